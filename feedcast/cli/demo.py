"""``feedcast demo``: the pipeline end to end on bundled samples (:mod:`feedcast.cli.demo_run`,
loaded when the command runs: it brings the sandbox with it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedcast.cli._common import out
from feedcast.store import Store

__all__ = ["commands"]

commands = typer.Typer()


@commands.command("demo")
def demo_command(
    demo_db: Annotated[
        Path,
        typer.Option(
            "--demo-db",
            help="Scratch database for the demo (recreated each run); its other files go beside it.",
        ),
    ] = Path(".feedcast/demo/feedcast-demo.duckdb"),
    keep: Annotated[bool, typer.Option("--keep", help="Keep serving the samples until Ctrl-C.")] = False,
) -> None:
    """Run the pipeline end to end on bundled samples served on loopback."""
    from feedcast.cli.demo_run import run_demo

    run_demo(Store(demo_db), out, keep=keep)
