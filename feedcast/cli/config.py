"""``feedcast apply`` and ``feedcast export``: the set-up as a YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedcast.cli._common import Format, FormatOpt, State, err, out, show_json, write_file, write_out

__all__ = ["commands"]

commands = typer.Typer()


@commands.command("apply")
def apply_command(
    file: Annotated[Path, typer.Argument(help="A YAML file: sources, channels, subscribers, automations.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change, change nothing.")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Also remove sources, channels and automations the file does not list."),
    ] = False,
    no_fetch: Annotated[
        bool, typer.Option("--no-fetch", help="Register new sources without their baseline fetch.")
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Make the set-up match a YAML file (idempotent): prints what it created, changed
    and removed. Everything is checked first; errors name the file, entry and field."""
    from feedcast.config import apply_config, load_config, plan_config

    store = State.store()
    config = load_config(file)
    plan = plan_config(store, config, file, prune=prune)
    notes = [] if dry_run else apply_config(store, plan, fetch=not no_fetch)
    if fmt == Format.json:
        show_json(
            {
                "dry_run": dry_run,
                "created": plan.created,
                "changed": plan.changed,
                "removed": plan.removed,
                "unchanged": plan.unchanged,
                "kept": plan.kept,
                "notes": notes,
            }
        )
        return
    prefix = "would be " if dry_run else ""
    for label, entries in (("created", plan.created), ("changed", plan.changed), ("removed", plan.removed)):
        for entry in entries:
            out.print(f"{prefix}{label}: {entry}", markup=False, highlight=False)
    for note in notes:
        out.print(f"  {note}", markup=False, highlight=False)
    for entry in plan.kept:
        out.print(f"kept (not in the file; --prune removes it): {entry}", markup=False, highlight=False)
    if plan.empty:
        out.print(f"{file}: nothing to change ({len(plan.unchanged)} entries up to date)", markup=False)
    elif dry_run:
        out.print("dry run: nothing was changed", markup=False)


@commands.command("export")
def export_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write to FILE instead of stdout.")
    ] = None,
) -> None:
    """Write the current sources, channels and automations as YAML for `feedcast apply`
    (secrets stay env:VAR references; subscribers are data: see `feedcast subscriber list`)."""
    from feedcast.config import export_config

    notes: list[str] = []
    text = export_config(State.reader(), notes)
    for note in notes:
        err.print(f"warning: {note}", markup=False)
    if output is None:
        write_out(text)
        return
    write_file(output, text)
    out.print(f"wrote {output}", markup=False)
