"""``feedcast web``: serve the inbound endpoints, and ``feedcast audience``: which
audiences people may subscribe themselves to."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from feedcast.cli._common import Format, FormatOpt, State, err, out, show_list
from feedcast.kernel.models import ChannelConfig

__all__ = ["audience_commands", "commands", "endpoints"]

commands = typer.Typer()  # web
audience_commands = typer.Typer()  # feedcast audience ...

DEFAULT_PUBLIC_URL = (
    "http://127.0.0.1:8080"  # what feedcast.delivery puts in links without FEEDCAST_PUBLIC_URL
)


def endpoints(paths: list[str], channels: list[ChannelConfig], public_url: str) -> list[str]:
    """One line per endpoint: a route with ``{channel}`` under a kind's name (``/messenger/
    {channel}``) once per channel of that kind, the other routes as patterns."""
    lines: list[str] = []
    for path in paths:
        if "{channel}" in path:
            kinds = [k for k in {c.kind for c in channels} if f"/{k}" in path]
            for config in channels:
                if config.kind in kinds:
                    url = public_url + path.replace("{channel}", config.name)
                    lines.append(f"  {config.kind} {config.name}: {url}{_note(config)}")
            if not kinds:
                lines.append(f"  {public_url}{path}")
        else:
            lines.append(f"  {public_url}{path}")
    return lines


def _note(config: ChannelConfig) -> str:
    if config.kind != "messenger":
        return ""
    missing = [flag for flag, key in (("--app-secret", "app_secret"), ("--verify-token", "verify_token"))
               if not config.settings.get(key)]  # fmt: skip
    if missing:
        return f"  (needs {' and '.join(missing)}: feedcast channel add {config.name} messenger ...)"
    return "  (Meta app > Webhooks: this callback URL and the verify token; fields messages, messaging_postbacks, messaging_referrals, messaging_optins)"


@commands.command("web")
def web(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="Where the outside reaches this server (default: env FEEDCAST_PUBLIC_URL, else http://HOST:PORT).",
        ),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            metavar="IP/CIDR",
            help="A reverse proxy whose X-Forwarded-For is believed (repeatable; none by default: the client is the connection's address).",
        ),
    ] = None,
) -> None:
    """Serve the inbound endpoints until Ctrl-C: the Messenger webhook, the Telegram
    webhook, one-click unsubscribe, subscribe pages and click tracking."""
    import uvicorn

    from feedcast.web.app import create_app, trusted_networks

    proxies = trusted_networks(trusted_proxy or [])
    store = State.store()
    configured = os.environ.get("FEEDCAST_PUBLIC_URL")
    public = (public_url or configured or f"http://{host}:{port}").strip().rstrip("/")
    application = create_app(store, public_url=public, trusted_proxies=proxies)
    channels = store.list_channels()
    paths = [p for p in (getattr(r, "path", None) for r in application.routes) if isinstance(p, str)]
    out.print(f"feedcast web on http://{host}:{port} (public URL {public})", highlight=False, markup=False)
    for line in endpoints(paths, channels, public):
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    if (configured or DEFAULT_PUBLIC_URL).rstrip("/") != public:
        err.print(
            f"note: campaigns put links on FEEDCAST_PUBLIC_URL ({configured or DEFAULT_PUBLIC_URL}); "
            f"set it to {public} for `feedcast send` and `feedcast run` too",
            highlight=False,
            markup=False,
        )
    if proxies:
        out.print(f"  X-Forwarded-For believed from {', '.join(proxies)}", highlight=False, markup=False)
    waiting = application.state.inbound.spool.counts()["waiting"]
    if waiting:
        out.print(f"  {waiting} inbound event(s) kept from the last run: processing them first", markup=False)
    # no access log: paths and queries carry tokens (/u/TOKEN, hub.verify_token);
    # forwarded headers only through create_app's trusted proxies (uvicorn's own
    # default would believe any X-Forwarded-For from 127.0.0.1)
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


# --------------------------------------------------------------------------- audiences


@audience_commands.command("public")
def audience_public(
    tags: Annotated[
        list[str], typer.Argument(help="Tags people may subscribe themselves to.", metavar="TAG...")
    ],
) -> None:
    """Open audiences to self-subscription: /s/TAG pages, t.me/BOT?start=TAG and
    m.me/PAGE?ref=TAG links subscribe with the tag. Any other tag is refused there."""
    changed = State.store().set_audiences_public(tags, True)
    for tag in tags:
        note = "now public" if tag in changed else "already public"
        out.print(f"audience {tag}: {note} (/s/{tag} subscribes to it)", markup=False, highlight=False)


@audience_commands.command("private")
def audience_private(
    tags: Annotated[list[str], typer.Argument(help="Tags to close to self-subscription.", metavar="TAG...")],
) -> None:
    """Close audiences to self-subscription (existing subscribers keep their tags)."""
    changed = State.store().set_audiences_public(tags, False)
    for tag in tags:
        note = "now private" if tag in changed else "already private"
        out.print(f"audience {tag}: {note} (/s/{tag} answers 404)", markup=False, highlight=False)


@audience_commands.command("list")
def audience_list(fmt: FormatOpt = Format.table) -> None:
    """Tags in use or declared, whether they are public, and their active subscribers."""
    show_list(
        fmt,
        State.store().audiences(),
        as_json=dict,
        empty="no audiences yet: subscribers get tags with --tag; feedcast audience public TAG opens one",
        columns=["audience", "public", "active subscribers"],
        row=lambda r: [r["tag"], "yes" if r["public"] else "", r["subscribers"]],
    )
