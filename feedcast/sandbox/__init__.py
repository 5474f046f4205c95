"""Local stand-ins for the outside world, for rehearsals, tests, the demo and benchmarks.

- :class:`SampleServer`: sample sources on loopback with real validators and gzip;
- provider emulators (Telegram Bot API, Messenger Send API, an SMTP sink, webhook
  receivers) faithful to the providers' envelopes, error bodies and rate limits, each
  keeping a record of what every recipient received. ``feedcast sandbox`` starts them;
  what they share (rate windows, fault injection, settings, the control API's plumbing)
  is :mod:`feedcast.sandbox.base`.
"""

from feedcast.sandbox.asgi import AsgiServer
from feedcast.sandbox.samples import Route, SampleServer, sample_text

__all__ = ["AsgiServer", "Route", "SampleServer", "sample_text"]
