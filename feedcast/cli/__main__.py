"""``python -m feedcast.cli``: the same as the ``feedcast`` command."""

from feedcast.cli import main

main()
