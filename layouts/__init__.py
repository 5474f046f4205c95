"""Layouts: items -> channel-ready Messages, then Messages -> provider calls.

* :mod:`layouts.render`: layouts (folders of Jinja2 templates, built-in ones in
  ``layouts/builtin/``) render items into :class:`~feedcast.kernel.models.Message` objects;
* :mod:`layouts.filters`: the template filters (sanitising, excerpts, money, dates);
* :mod:`layouts.limits`: the time and size limits every render runs under;
* :mod:`layouts.html` / :mod:`layouts.text`: sanitisers, validators, truncation;
* :mod:`layouts.payloads`: a Message as the provider calls of its format.

Plain Python: no Prefect, no DuckDB, no network. The renderer's types are re-exported
here lazily, so importing one submodule does not import the others; the function
``render`` is not (its name is the submodule's): ``from layouts.render import render``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from layouts.render import (
        FORMATS,
        EventInfo,
        Layout,
        RenderContext,
        available_layouts,
        builtin_layouts,
        email_parts,
        load_layout,
    )

__all__ = [
    "FORMATS",
    "EventInfo",
    "Layout",
    "RenderContext",
    "available_layouts",
    "builtin_layouts",
    "email_parts",
    "load_layout",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("layouts.render"), name)
    raise AttributeError(f"module 'layouts' has no attribute {name!r}")
