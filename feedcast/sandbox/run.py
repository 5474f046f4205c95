"""Every provider emulator at once: what ``feedcast sandbox`` and the demo start.

The sandbox's credentials are fixed, well-known values (nothing secret about them):
export them and register channels pointing at the emulators' URLs to rehearse a whole
campaign without a real bot, page or mail server.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from feedcast.sandbox.asgi import AsgiServer
from feedcast.sandbox.messenger import MessengerEmulator
from feedcast.sandbox.smtp import SmtpSink
from feedcast.sandbox.telegram import TelegramEmulator
from feedcast.sandbox.webhooks import WebhookReceiver

__all__ = ["SANDBOX_ENV", "Sandbox", "SandboxPorts"]

TELEGRAM_TOKEN = "100001:SANDBOX-telegram-bot-token"  # noqa: S105 - public sandbox value
PAGE_TOKEN = "SANDBOX-messenger-page-token"  # noqa: S105 - public sandbox value
SANDBOX_ENV = {
    "SANDBOX_TELEGRAM_TOKEN": TELEGRAM_TOKEN,
    "SANDBOX_PAGE_TOKEN": PAGE_TOKEN,
    "FEEDCAST_ALLOW_PRIVATE_NETWORKS": "1",  # the emulators are on loopback: the address guard lets them be
}


@dataclass(frozen=True, slots=True)
class SandboxPorts:
    telegram: int = 0
    messenger: int = 0
    smtp: int = 0
    webhooks: int = 0


class Sandbox:
    """``with Sandbox() as sandbox: sandbox.urls["telegram"]``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        ports: SandboxPorts | None = None,
        *,
        limits: bool = True,
        fault_rate: float = 0.0,
        drop_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        ports = ports or SandboxPorts()
        self.telegram = TelegramEmulator(limits=limits, fault_rate=fault_rate, drop_rate=drop_rate, seed=seed)
        self.telegram.add_bot(TELEGRAM_TOKEN, "feedcast_sandbox_bot")
        self.messenger = MessengerEmulator(
            limits=limits, fault_rate=fault_rate, drop_rate=drop_rate, seed=seed
        )
        self.messenger.add_page(PAGE_TOKEN, page_id="100200300", name="Sandbox Page")
        self.webhooks = WebhookReceiver(limits=limits, fault_rate=fault_rate, drop_rate=drop_rate, seed=seed)
        self.smtp = SmtpSink(host, ports.smtp, fault_rate=fault_rate, seed=seed)
        self._servers: dict[str, AsgiServer] = {
            "telegram": self.telegram.serve(host, ports.telegram),
            "messenger": self.messenger.serve(host, ports.messenger),
            "webhooks": self.webhooks.serve(host, ports.webhooks),
        }

    @property
    def urls(self) -> dict[str, str]:
        return {
            "telegram": self._servers["telegram"].base_url,
            "messenger": self._servers["messenger"].base_url + "/v25.0",
            "smtp": self.smtp.url,
            "webhooks": self._servers["webhooks"].base_url,
        }

    def channel_commands(self) -> list[str]:
        """``feedcast channel add`` lines for channels on this sandbox."""
        urls = self.urls
        hooks = urls["webhooks"]
        return [
            f"feedcast channel add sandbox-telegram telegram --token env:SANDBOX_TELEGRAM_TOKEN --api-url {urls['telegram']}",
            f"feedcast channel add sandbox-messenger messenger --page-token env:SANDBOX_PAGE_TOKEN --api-url {urls['messenger']}",
            f"feedcast channel add sandbox-email email --smtp {urls['smtp']} --from news@sandbox.example",
            f"feedcast channel add sandbox-slack webhook --format slack --url {hooks}/services/T000/B000/SANDBOX",
            f"feedcast channel add sandbox-json webhook --format json --url {hooks}/hooks/sandbox",
        ]

    def stats(self) -> dict[str, Any]:
        return {
            "telegram": {k: v for k, v in self.telegram.stats().items() if k != "bots"},
            "messenger": self.messenger.stats(),
            "smtp": asdict(self.smtp.stats()),
            "webhooks": self.webhooks.stats(),
        }

    def start(self) -> Sandbox:
        started: list[Any] = []
        try:
            for server in self._servers.values():
                server.start()
                started.append(server)
            self.smtp.start()
        except BaseException:
            for server in started:
                server.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()
        self.smtp.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
