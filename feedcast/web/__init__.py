"""``feedcast web``: one ASGI app (Starlette, served by uvicorn) for everything that
comes from the outside: the Messenger webhook, the Telegram webhook (optional), the
one-click unsubscribe endpoint, subscribe pages with email double opt-in, and click
tracking. See :mod:`feedcast.web.app`."""
