"""``feedcast inbox``, ``feedcast channel replies`` and ``feedcast channel webhook``: the
inbound side of the bots on the command line."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from typing import Annotated, Any

import typer

from feedcast.cli._common import Format, FormatOpt, State, err, out, show_json, show_table
from feedcast.kernel.errors import FeedcastError, InvalidValue

__all__ = ["channel_commands", "commands"]

commands = typer.Typer()  # inbox
channel_commands = typer.Typer()  # feedcast channel replies, feedcast channel webhook

REPLY_VALUES = "TEXT (a template), off, on or builtin"
_SAMPLE = {"name": "Alex", "audience": "deals"}  # what --show renders the templates with


# --------------------------------------------------------------------------- inbox


@commands.command("inbox")
def inbox_command(
    channel: Annotated[
        list[str] | None,
        typer.Option("--channel", metavar="C", help="A Telegram channel (repeatable; default: every one)."),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Process one batch of updates, then stop.")] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", metavar="SECONDS", help="Long-polling wait for updates (getUpdates timeout)."
        ),
    ] = 25.0,
) -> None:
    """Answer the bots: long-poll Telegram's getUpdates, subscribe on /start [payload],
    unsubscribe on /stop or when blocked, register groups and channels the bot is added
    to, send the channel's replies. One line per update; Ctrl-C stops cleanly."""
    from feedcast.inbox.telegram import Handled, PollSummary, poll_channels

    if timeout < 0:
        raise InvalidValue("--timeout must be 0 or more seconds")
    store = State.reader()

    def show(name: str, handled: Handled) -> None:
        out.print(f"{name}  {handled.line()}", markup=False, highlight=False)

    async def run() -> list[PollSummary | FeedcastError]:
        stop = asyncio.Event()
        installed = False
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
                installed = True
        try:
            return await poll_channels(store, channel, once=once, timeout=timeout, stop=stop, on_handled=show)
        finally:
            if installed:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)

    failed = False
    for result in asyncio.run(run()):
        if isinstance(result, FeedcastError):
            failed = True
            err.print(f"error: {result}", highlight=False, markup=False)
            continue
        dup = f" ({result.duplicates} already seen)" if result.duplicates else ""
        out.print(
            f"{result.channel}: {result.updates} updates{dup}, {result.subscribed} subscribed, "
            f"{result.unsubscribed} unsubscribed, {result.replies} replies sent"
            + (f", {result.errors} errors" if result.errors else "")
            + (f"; next offset {result.offset}" if result.offset is not None else ""),
            markup=False,
            highlight=False,
        )
    if failed:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- replies


def _reply_option(kind: str, help_text: str) -> Any:
    return typer.Option(f"--{kind}", metavar="TEXT|off", help=help_text)


@channel_commands.command("replies")
def channel_replies(
    name: Annotated[str, typer.Argument(help="The channel.")],
    presentation: Annotated[
        str | None, _reply_option("presentation", "First contact (any first message from someone new).")
    ] = None,
    welcome: Annotated[str | None, _reply_option("welcome", "After /start (subscribed).")] = None,
    goodbye: Annotated[str | None, _reply_option("goodbye", "After /stop (unsubscribed).")] = None,
    default: Annotated[str | None, _reply_option("default", "Anything else people write.")] = None,
    show: Annotated[bool, typer.Option("--show", help="Print the replies (also without options).")] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Configure what a bot says by itself. Each value is a template (Jinja, with
    {{ name }}, {{ channel }}, {{ audience }}), or off (send nothing), on (back on, same
    text) or builtin (the built-in text)."""
    from feedcast.replies import check_template

    store = State.reader()
    config = store.get_channel(name)
    if config.kind not in ("telegram", "messenger"):
        raise InvalidValue(
            f"channel {name!r} is a {config.kind} channel: only bots (telegram, messenger) reply"
        )
    changes = {"presentation": presentation, "welcome": welcome, "goodbye": goodbye, "default": default}
    current = store.bot_replies(name)
    for kind, value in changes.items():
        if value is None:
            continue
        template, _enabled = current[kind]
        word = value.strip().lower()
        if word == "off":
            store.set_bot_reply(name, kind, template=template, enabled=False)
            note = "turned off"
        elif word == "on":
            store.set_bot_reply(name, kind, template=template, enabled=True)
            note = "turned on"
        elif word == "builtin":
            store.set_bot_reply(name, kind, template=None, enabled=True)
            note = "set to the built-in text"
        else:
            if not value.strip():
                raise InvalidValue(f"--{kind} is empty: give a text, or off to send nothing")
            store.set_bot_reply(name, kind, template=check_template(value), enabled=True)
            note = "set"
        out.print(f"{name}: {kind} reply {note}", markup=False, highlight=False)
    if show or all(v is None for v in changes.values()):
        _show_replies(name, fmt)


def _show_replies(name: str, fmt: Format) -> None:
    from feedcast.replies import BUILTIN, reply_text

    store = State.reader()
    rows = []
    for kind, (template, enabled) in store.bot_replies(name).items():
        try:
            preview = reply_text(store, name, kind, **_SAMPLE) if enabled else None
        except Exception as exc:  # a template that compiles yet fails to render
            preview = f"(cannot render: {exc})"
        rows.append(
            {
                "kind": kind,
                "enabled": enabled,
                "template": template,
                "builtin": template is None,
                "preview": preview,
                "text": template if template is not None else BUILTIN[kind],
            }
        )
    if fmt == Format.json:
        show_json(rows)
        return
    show_table(
        ["reply", "on", "template", f"preview (name={_SAMPLE['name']}, audience={_SAMPLE['audience']})"],
        [
            [
                r["kind"],
                "yes" if r["enabled"] else "off",
                r["template"] if r["template"] is not None else "(built-in)",
                r["preview"] or "",
            ]
            for r in rows
        ],
    )


# --------------------------------------------------------------------------- webhook


@channel_commands.command("webhook")
def channel_webhook(
    name: Annotated[str, typer.Argument(help="The Telegram channel.")],
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="PUBLIC_URL",
            help="Where feedcast web is reached from the internet (https); updates go to PUBLIC_URL/telegram/NAME.",
        ),
    ] = None,
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete the webhook: back to feedcast inbox.")
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Set (--url) or delete (--delete) a Telegram webhook, or show it. The secret token
    Telegram sends back is derived from feedcast's signing key and never printed."""
    from feedcast.inbox.telegram import open_channel, update_webhook, webhook_secret
    from feedcast.tokens import signing_key

    if url is not None and delete:
        raise InvalidValue("give --url to set the webhook or --delete to delete it, not both")
    store = State.reader()
    channel = open_channel(store, name)
    target = None
    if url is not None:
        target = _webhook_url(url, name)
    secret = webhook_secret(signing_key(store.path), name) if target is not None else None
    info = asyncio.run(update_webhook(channel, target, secret, delete=delete))
    if target is not None:
        out.print(
            f"webhook set: Telegram posts {name}'s updates to {target} (served by feedcast web); "
            f"feedcast inbox gets 409 until `feedcast channel webhook {name} --delete`",
            markup=False,
            highlight=False,
        )
    elif delete:
        out.print(
            f"webhook deleted: feedcast inbox receives {name}'s updates again "
            f"({info.get('pending_update_count', 0)} waiting)",
            markup=False,
            highlight=False,
        )
    elif fmt == Format.json:
        show_json(info)
    else:
        show_table(
            ["url", "pending updates", "last error"],
            [
                [
                    info.get("url") or "(none: feedcast inbox polls)",
                    info.get("pending_update_count", 0),
                    info.get("last_error_message"),
                ]
            ],
        )


def _webhook_url(url: str, name: str) -> str:
    from urllib.parse import quote, urlsplit

    base = url.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise InvalidValue(f"--url must be the https URL where feedcast web is reached, not {url!r}")
    suffix = f"/telegram/{quote(name, safe='')}"
    return base if base.endswith(suffix) else base + suffix
