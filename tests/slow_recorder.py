"""Send an automation with a store whose delivery-outcome writes are slowed (what a
database file kept busy by another process does to the engine), in a process of its own
that a test then kills:

    FEEDCAST_DB=... python tests/slow_recorder.py AUTOMATION DELAY_SECONDS

Everything else is the real thing: ``send_automation`` with the default settings, the
channel's secrets from the environment, the real store for every other read and write
(marking deliveries started included)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import datetime

from feedcast.delivery import send_automation
from feedcast.kernel.models import DeliveryUpdate
from feedcast.store import Store


class SlowRecorder(Store):
    delay = 0.0

    def record_deliveries(self, updates: Sequence[DeliveryUpdate], *, now: datetime | None = None) -> None:
        time.sleep(self.delay)
        super().record_deliveries(updates, now=now)


def main(argv: Sequence[str]) -> None:
    automation, delay = argv[0], float(argv[1])
    store = SlowRecorder()
    store.delay = delay
    send_automation(store, automation)


if __name__ == "__main__":
    main(sys.argv[1:])
