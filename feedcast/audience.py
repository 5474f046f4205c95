"""Reading audiences: subscriber lists from CSV files, and the languages people read
(plain Python, no SQL)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError

from channels.base import Channel
from feedcast.kernel.errors import InvalidValue, UserError
from feedcast.kernel.models import NewSubscriber

__all__ = ["RECIPIENT_COLUMNS", "read_subscribers_csv", "subscriber_locale"]

RECIPIENT_COLUMNS = ("recipient", "chat_id", "psid", "email", "address", "id")


def subscriber_locale(value: str | None, *, strict: bool = True) -> str | None:
    """A language as subscribers are tagged with it: ``it``, ``pt_BR`` (from ``it``,
    ``pt-br``, Telegram's ``language_code``, Messenger's ``pt_BR``). None for none; an
    unknown one is InvalidValue, or None when not ``strict`` (what a provider said)."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return str(Locale.parse(text.replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        if strict:
            raise InvalidValue(f"unknown language {text!r} (e.g. it, fr_CA, pt-BR)") from None
        return None


def _rows(path: Path) -> tuple[list[tuple[int, dict[str, str]]], str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    column = next((c for c in RECIPIENT_COLUMNS if c in fields), None)
    if column is None:
        raise UserError(f"{path}: no recipient column (one of: {', '.join(RECIPIENT_COLUMNS)})")
    rows = [
        (
            reader.line_num,
            {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if isinstance(v, str)},
        )
        for row in reader
    ]
    return rows, column


def read_subscribers_csv(
    path: Path, channel: Channel, extra_tags: tuple[str, ...] = ()
) -> tuple[list[NewSubscriber], list[str]]:
    """Subscribers from a CSV (a recipient column, optional tags separated by ; or |,
    name, last_inbound_at, locale), each recipient checked by the channel. Bad rows do not stop
    the others: they come back as "line N: why" messages."""
    rows, column = _rows(path)
    news: dict[str, NewSubscriber] = {}
    first_line: dict[str, int] = {}
    bad: list[str] = []
    for line, row in rows:
        try:
            address = channel.validate_recipient(row.get(column, ""))
            tags = tuple(t for t in (row.get("tags") or "").replace("|", ";").split(";") if t.strip())
            inbound = None
            if row.get("last_inbound_at"):
                try:
                    inbound = datetime.fromisoformat(row["last_inbound_at"])
                except ValueError:
                    raise InvalidValue(
                        f"last_inbound_at {row['last_inbound_at']!r} is not an ISO date-time"
                        " (read in UTC unless it has an offset, e.g. 2026-11-26T09:30:00+01:00)"
                    ) from None
                if inbound.tzinfo is None:
                    inbound = inbound.replace(tzinfo=UTC)
            if address in news:
                raise InvalidValue(f"{address!r} is already on line {first_line[address]}")
            first_line[address] = line
            locale = subscriber_locale(row.get("locale") or row.get("language"))
            news[address] = NewSubscriber(
                address, tags + extra_tags, row.get("name") or None, inbound, locale
            )
        except UserError as exc:
            bad.append(f"line {line}: {exc}")
    return list(news.values()), bad
