"""``feedcast channel add | kinds | list | show | remove | test``: the channels
campaigns go out on."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from feedcast.cli._common import Format, FormatOpt, State, out, show_fields, show_json, show_list, show_table
from feedcast.kernel.errors import FeedcastError, InvalidValue
from feedcast.kernel.models import ChannelConfig

__all__ = ["channel_commands"]

channel_commands = typer.Typer()  # feedcast channel ...

_FLAG_ALIASES = {"from": "from_addr"}


def _parse_options(args: list[str]) -> dict[str, str]:
    """``--api-url U --from=a@b`` -> {"api_url": "U", "from_addr": "a@b"}."""
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise InvalidValue(f"unexpected argument {arg!r} (channel options look like --name VALUE)")
        name, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise InvalidValue(f"--{name} needs a value")
            value = args[i + 1]
            i += 1
        key = name.replace("-", "_")
        key = _FLAG_ALIASES.get(key, key)
        if key in options:
            raise InvalidValue(f"--{name} is given twice")
        options[key] = value
        i += 1
    return options


def _channel_dict(config: ChannelConfig) -> dict[str, Any]:
    from channels import channel_class

    data = asdict(config)
    data["settings"] = channel_class(config.kind).shown_settings(config.settings)
    return data


@channel_commands.command("add", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def channel_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for the channel.")],
    kind: Annotated[str, typer.Argument(help="telegram, messenger, email, webhook or outbox.")],
) -> None:
    """Register a channel. Options depend on the kind (`feedcast channel kinds` lists them):

    telegram --token env:VAR [--api-url U];
    messenger --page-token env:VAR [--app-secret env:VAR] [--api-url U];
    email --smtp URL --from ADDR [--user U --password env:VAR] [--rate N] [--connections N];
    webhook --url U [--format slack|discord|json] [--secret env:VAR];
    outbox --dir PATH [--format F].

    Secrets are given as env:VAR: feedcast stores the reference, never the value.
    """
    from channels import channel_class
    from feedcast.watch import validate_name

    validate_name(name)
    cls = channel_class(kind)
    settings = cls.validate_settings(_parse_options(list(ctx.args)))
    State.store().add_channel(name, kind, settings, fixed_recipient=cls.fixed_recipient)
    note = f" (subscriber {cls.fixed_recipient!r} added)" if cls.fixed_recipient else ""
    out.print(f"added {kind} channel {name}{note}", markup=False)


@channel_commands.command("kinds")
def channel_kinds(fmt: FormatOpt = Format.table) -> None:
    """List the channel kinds and their options."""
    from channels import KINDS, channel_class

    rows = []
    for kind in KINDS:
        cls = channel_class(kind)
        for option in cls.options:
            rows.append(
                {
                    "kind": kind,
                    "option": "--from" if option.name == "from_addr" else option.flag,
                    "required": option.required,
                    "secret": "env:VAR"
                    if option.secret
                    else ("may be env:VAR" if option.may_be_secret else ""),
                    "default": option.default,
                    "help": option.help,
                }
            )
    if fmt == Format.json:
        show_json(rows)
        return
    show_table(
        ["kind", "option", "required", "secret", "default", "help"],
        [
            [r["kind"], r["option"], "yes" if r["required"] else "", r["secret"], r["default"], r["help"]]
            for r in rows
        ],
    )


@channel_commands.command("list")
def channel_list(fmt: FormatOpt = Format.table) -> None:
    """List channels (secrets shown as their env:VAR reference)."""
    show_list(
        fmt,
        State.reader().list_channels(),
        as_json=_channel_dict,
        empty="no channels yet: feedcast channel add NAME KIND [options]",
        columns=["name", "kind", "active subscribers", "settings", "last error"],
        row=lambda c: [
            c.name,
            c.kind,
            c.subscribers,
            " ".join(f"{k}={v}" for k, v in _channel_dict(c)["settings"].items()),
            c.last_error,
        ],
    )


@channel_commands.command("show")
def channel_show(name: str, fmt: FormatOpt = Format.table) -> None:
    """Show one channel."""
    data = _channel_dict(State.reader().get_channel(name))
    if fmt == Format.json:
        show_json(data)
        return
    settings = data.pop("settings")
    show_fields([*data.items(), *[(f"settings.{k}", v) for k, v in settings.items()]])


@channel_commands.command("remove")
def channel_remove(name: str) -> None:
    """Remove a channel and its subscribers (its campaigns stay in the history)."""
    removed = State.reader().remove_channel(name)
    out.print(f"removed channel {name} and {removed} subscriber(s)", markup=False)


@channel_commands.command("test")
def channel_test(
    name: str,
    to: Annotated[
        str | None, typer.Option("--to", metavar="R", help="Also send a test message to this recipient.")
    ] = None,
) -> None:
    """Check a channel's credentials and reachability; with --to, send a test message."""
    from channels.base import Outcome
    from feedcast.delivery import check_channel, send_test

    store = State.reader()
    out.print(check_channel(store, name), markup=False)
    if to is not None or store.get_channel(name).kind == "webhook":
        if to is None and store.get_channel(name).kind == "webhook":
            return  # a webhook check does not post; --to webhook posts a test message
        result = send_test(store, name, to)
        if result.outcome is not Outcome.SENT:
            raise FeedcastError(f"test message to {to}: {result.outcome.value}: {result.error}")
        ident = f" (message id {result.message_id})" if result.message_id else ""
        out.print(f"test message sent to {to}{ident}", markup=False)
