"""The outbox: every message written as a file, for dry runs and review.

``DIR/campaign-{id}/{recipient}/{position:03d}-{method}.json`` holds one provider call
exactly as a real channel would make it (method, body) plus the recipient; with
``--format email`` an email call is written as the ``.eml`` the email channel would
send (:func:`channels.email.build_email`), which any mail client opens.

An outbox has no natural recipient: registering one subscribes ``review``
(``fixed_recipient``) so that a campaign has someone to write for; more recipients can
be added to rehearse an audience. Writes are atomic (a temporary file, then ``os.replace``): a reader never
sees half a file, and a retried call overwrites its own file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from channels.base import Channel, Option, Outcome, Recipient, Result, Secrets, SendContext
from channels.email import build_email, parse_address, read_attachments
from feedcast.kernel.errors import ChannelError, InvalidValue
from feedcast.kernel.models import ProviderCall, Upload

__all__ = ["FORMATS", "OutboxChannel", "safe_name"]

FORMATS = ("telegram", "messenger", "email", "slack", "discord", "json")
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def safe_name(text: str, limit: int = 80) -> str:
    """A file name for ``text`` (a chat id, a PSID, an address): unsafe characters become
    ``_``; when anything changed, a short digest keeps two recipients apart."""
    name = _UNSAFE.sub("_", text).strip("._") or "_"
    name = name[:limit]
    if name != text:
        name += "-" + hashlib.blake2b(text.encode("utf-8"), digest_size=4).hexdigest()
    return name


class OutboxChannel(Channel):
    kind = "outbox"
    description = "Write every message to a directory (dry runs, review): JSON, or .eml for email"
    options = (
        Option("dir", "the directory messages are written to", required=True),
        Option("format", "the format layouts render for this outbox", default="json", choices=FORMATS),
        Option("from_addr", "the From address of .eml files", default="feedcast@localhost"),
    )
    max_in_flight = 4
    fixed_recipient = "review"

    def __init__(self, name: str, settings: Mapping[str, Any], *, secrets: Secrets | None = None) -> None:
        super().__init__(name, settings, secrets=secrets)
        self._files: dict[str, tuple[Upload, bytes]] = {}  # the campaign's attached files, read once

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        out = super().validate_settings(settings)
        if not out["dir"]:
            raise InvalidValue("--dir is empty")
        out["dir"] = os.path.abspath(os.path.expanduser(out["dir"]))
        out["from_addr"] = str(parse_address(out["from_addr"], what="--from-addr"))
        return out

    @property
    def format(self) -> str:
        return str(self.settings.get("format") or "json")

    @property
    def directory(self) -> Path:
        return Path(str(self.settings.get("dir") or "")).expanduser()

    def _fail(self, exc: BaseException) -> str:
        return f"cannot write to the outbox directory {self.directory}: {self.error_text(exc)}"

    def _write(self, relative: Path, data: bytes) -> None:
        target = self.directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def render(
        self,
        recipient: Recipient,
        call: ProviderCall,
        context: SendContext,
        position: int,
        files: Mapping[str, tuple[Upload, bytes]] | None = None,
    ) -> tuple[Path, bytes]:
        """The relative path and content of one call's file."""
        folder = Path(f"campaign-{context.campaign_id}") / safe_name(recipient.address)
        if self.format == "email" and call.method == "smtp":
            msg = build_email(
                call,
                recipient,
                context,
                position,
                from_addr=str(self.settings.get("from_addr") or "feedcast@localhost"),
                files=files,
            )
            return folder / f"{position:03d}-{safe_name(call.method)}.eml", msg.as_bytes()
        record = {
            "campaign_id": context.campaign_id,
            "position": position,
            "recipient": {
                "subscriber_id": recipient.subscriber_id,
                "address": recipient.address,
                "name": recipient.name,
            },
            "method": call.method,
            "body": call.body,
        }
        data = json.dumps(record, ensure_ascii=False, indent=2, default=str) + "\n"
        return folder / f"{position:03d}-{safe_name(call.method)}.json", data.encode("utf-8")

    async def send(
        self, recipient: Recipient, call: ProviderCall, context: SendContext, position: int
    ) -> Result:
        try:
            files = await read_attachments(call, context.files, self._files)
            relative, data = self.render(recipient, call, context, position, files)
        except (InvalidValue, ValueError, TypeError) as exc:
            return Result(Outcome.CONTENT, error=self.error_text(exc), code="message")
        try:
            await asyncio.to_thread(self._write, relative, data)
        except OSError as exc:
            return Result(Outcome.FATAL, error=self._fail(exc), code="write")
        return Result.sent(relative.as_posix())

    async def check(self) -> str:
        """The directory exists (or can be created) and takes a file."""

        def probe() -> None:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.directory, prefix=".check-"):
                pass

        try:
            await asyncio.to_thread(probe)
        except OSError as exc:
            raise ChannelError(f"channel {self.name!r}: {self._fail(exc)}") from None
        return f"outbox {self.directory} is writable ({self.format} messages)"
