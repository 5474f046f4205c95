"""``feedcast subscriber ...``: the people (or chats, addresses) a channel sends to."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from feedcast.cli._common import Format, FormatOpt, State, err, out, show_list
from feedcast.kernel.errors import InvalidValue
from feedcast.kernel.models import SUBSCRIBER_STATUSES, NewSubscriber, Subscriber

__all__ = ["subscriber_commands"]

subscriber_commands = typer.Typer()  # feedcast subscriber ...


def _subscriber_dict(s: Subscriber) -> dict[str, Any]:
    return asdict(s)


@subscriber_commands.command("add")
def subscriber_add(
    channel: Annotated[str, typer.Argument(help="The channel.")],
    recipient: Annotated[str, typer.Argument(help="Chat id or @channel, PSID, email address...")],
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="T", help="A tag (repeatable): audiences select by tag."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A display name.")] = None,
    locale: Annotated[
        str | None, typer.Option("--locale", metavar="LOC", help="The language the person reads (it, pt_BR).")
    ] = None,
) -> None:
    """Subscribe a recipient to a channel."""
    from feedcast.audience import subscriber_locale
    from feedcast.delivery import make_channel

    store = State.reader()
    address = make_channel(store.get_channel(channel)).validate_recipient(recipient)
    new = NewSubscriber(address, tuple(tag or ()), name, locale=subscriber_locale(locale))
    store.add_subscribers(channel, [new], update=False)
    out.print(f"subscribed {address} to {channel}", markup=False)


@subscriber_commands.command("import")
def subscriber_import(
    channel: Annotated[str, typer.Argument(help="The channel.")],
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with a recipient column (or chat_id, psid, email); optional tags (separated by ; or |), name, last_inbound_at, locale."
        ),
    ],
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="T", help="Add this tag to every imported subscriber."),
    ] = None,
) -> None:
    """Import subscribers from a CSV file. Known recipients get new tags but keep their
    status (an import never resubscribes someone who left); bad rows are reported by line."""
    from feedcast.audience import read_subscribers_csv
    from feedcast.delivery import make_channel

    store = State.reader()
    ch = make_channel(store.get_channel(channel))
    subscribers, bad = read_subscribers_csv(file, ch, tuple(tag or ()))
    news = {s.recipient: s for s in subscribers}
    counts = (
        store.add_subscribers(channel, list(news.values()), source="import")
        if news
        else {"added": 0, "updated": 0, "unchanged": 0}
    )
    for problem in bad[:10]:
        err.print(f"skipped {problem}", markup=False, highlight=False)
    if len(bad) > 10:
        err.print(f"... and {len(bad) - 10} more rows skipped", markup=False)
    out.print(
        f"{channel}: {counts['added']} added, {counts['updated']} updated, {counts['unchanged']} unchanged, {len(bad)} skipped",
        markup=False,
    )


@subscriber_commands.command("list")
def subscriber_list(
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="active, unsubscribed, unreachable or bounced.")
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only subscribers with this tag.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many.")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """List subscribers."""
    if status is not None and status not in SUBSCRIBER_STATUSES:
        raise InvalidValue(f"--status must be one of {', '.join(SUBSCRIBER_STATUSES)}")
    show_list(
        fmt,
        State.reader().list_subscribers(channel, status=status, tag=tag, limit=limit),
        as_json=_subscriber_dict,
        empty="no subscribers" + (" matching" if status or tag or channel else ""),
        columns=["channel", "recipient", "status", "tags", "name", "language", "reason", "since"],
        row=lambda s: [
            s.channel,
            s.recipient,
            s.status,
            " ".join(s.tags),
            s.name,
            s.locale,
            s.status_reason,
            s.created_at,
        ],
        optional=["since", "reason", "language", "tags"],
    )


@subscriber_commands.command("remove")
def subscriber_remove(channel: str, recipient: str) -> None:
    """Delete a subscriber (their deliveries stay in the history)."""
    State.reader().remove_subscriber(channel, recipient)
    out.print(f"removed {recipient} from {channel}", markup=False)
