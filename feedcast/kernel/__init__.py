"""The kernel: what every layer may import, importing nothing heavy (no DuckDB, no
pyarrow, no Prefect, no Rich, no web framework) and nothing of feedcast above it.

- :mod:`feedcast.kernel.models`: the data shapes passed between the stages (items,
  sources, messages, provider calls, automations ...);
- :mod:`feedcast.kernel.errors`: the one exception tree (drawn in its docstring);
- :mod:`feedcast.kernel.durations`: ``15m`` <-> ``timedelta``;
- :mod:`feedcast.kernel.urls`: the one check of a URL that outside text gives us;
- :mod:`feedcast.kernel.netguard`: the address guard every outbound connection passes;
- :mod:`feedcast.kernel.clock`: the clock rate limits and emulators read (a fake one in tests).

The import contract in ``pyproject.toml`` (``lint-imports``, run by ``scripts/test``)
keeps it at the bottom: see ``docs/architecture.md``.
"""

__version__ = "0.1.0"  # as in pyproject.toml
