"""A fast farm of synthetic RSS 2.0 feeds on loopback, for the polling benchmark.

Run it as its own process (so its CPU does not share the GIL with the client
being measured)::

    python bench/farm.py --feeds 10000 --items 20 --ports 250

It listens on 127.0.0.1 only, on ``--ports`` ports chosen by the kernel, plus one
control port, and prints one JSON line when ready::

    {"control": 41234, "ports": [41235, ...], "feeds": 10000, "items": 20}

Feed ``i`` is ``http://127.0.0.1:<ports[i % len(ports)]>/f/<i>.xml`` (any port
serves any feed; spreading feeds over ports makes each port a distinct
"host" for per-host limits and connection pools, as with real sites).

Every feed is pre-rendered (plain and gzip) with a strong ETag and a
Last-Modified; ``If-None-Match`` (or ``If-Modified-Since`` when no ETag is sent)
gets a 304. The server is a bare ``asyncio.Protocol`` HTTP/1.1 keep-alive
implementation: serving a request is a dict lookup and one ``write``.

Control endpoint (JSON in, JSON out, on the control port):

- ``POST /change`` ``{"fraction": 0.1, "limit": 2000, "seed": 1}``: change that
  fraction of feeds ``0..limit-1``; each chosen feed gets either one new item
  (the oldest drops off, the feed keeps ``--items`` items) or one edited item
  (title and description change), alternately. Returns the feeds and the counts
  ``{"new": n, "changed": m}`` a poller must report.
- ``POST /reset``: every feed back to its initial content (and validators).
- ``GET /stats`` / ``POST /stats/reset``: request counters (200, 304, 404).
- ``POST /shutdown``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from html import escape

HOST = "127.0.0.1"  # loopback only, always

T0 = 1_735_689_600  # 2025-01-01T00:00:00Z: items' pubDates are spread from here

_WORDS = [
    "garden",
    "harbour",
    "signal",
    "market",
    "winter",
    "ledger",
    "copper",
    "orchard",
    "lantern",
    "quarry",
    "meadow",
    "ferry",
    "archive",
    "circuit",
    "pattern",
    "mirror",
    "violet",
    "thunder",
    "granite",
    "willow",
    "compass",
    "kettle",
    "saddle",
    "anchor",
    "whisper",
    "canyon",
    "ember",
    "festival",
    "harvest",
    "island",
    "journey",
    "kingdom",
    "library",
    "mountain",
    "notebook",
    "ocean",
    "palace",
    "question",
    "river",
    "season",
    "temple",
    "umbrella",
    "valley",
    "window",
    "yellow",
    "zephyr",
    "bridge",
    "castle",
    "desert",
    "engine",
    "forest",
    "galaxy",
    "horizon",
    "iceberg",
    "jungle",
    "kitchen",
    "lemon",
    "marble",
    "needle",
    "olive",
    "pepper",
]
_TOPICS = ("Technology", "Science", "Culture", "Politics", "Sport", "Travel", "Food", "Business")
_AUTHORS = ("Ada Byron", "Grace Hopper", "Alan Kay", "Barbara Liskov", "Ken Thompson", "Radia Perlman")


def _sentence(rng: random.Random, lo: int, hi: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(lo, hi))]
    return " ".join(words).capitalize()


@dataclass
class FeedState:
    added: int = 0  # items added since the start: the feed holds items added .. added+items-1
    edits: dict[int, int] = field(default_factory=dict)  # item sequence -> times edited
    modified: float = 0.0  # Last-Modified (epoch seconds)


def render_item(feed: int, seq: int, edits: int) -> str:
    rng = random.Random(feed * 1_000_003 + seq * 7_919 + edits)
    slug = "-".join(rng.choice(_WORDS) for _ in range(3))
    title = _sentence(rng, 5, 10)
    if edits:
        title += f" (updated {edits})"
    paragraphs = "".join(
        f"<p>{escape(_sentence(rng, 12, 24))}. <em>{escape(rng.choice(_WORDS))}</em> and "
        f'<a href="https://site{feed}.example/tags/{rng.choice(_WORDS)}">{escape(rng.choice(_WORDS))}</a>.</p>'
        for _ in range(rng.randint(2, 3))
    )
    if edits:
        paragraphs += f"<p>Update {edits}: {escape(_sentence(rng, 6, 12))}.</p>"
    published = T0 + seq * 6 * 3600 + feed * 60
    link = f"https://site{feed}.example/{time.strftime('%Y/%m', time.gmtime(published))}/{seq}-{slug}"
    description = (
        f"<![CDATA[{paragraphs}]]>" if feed % 2 == 0 else escape(paragraphs, quote=False)
    )  # half the feeds CDATA, half entity-escaped HTML, as in the wild
    media = ""
    if seq % 2 == 0:
        media = (
            f'\n      <media:content url="https://cdn.site{feed}.example/img/{seq}-{slug}.jpg" '
            'medium="image" type="image/jpeg" width="1200" height="630"/>'
        )
    return (
        "    <item>\n"
        f"      <title>{escape(title)}</title>\n"
        f"      <link>{link}</link>\n"
        f'      <guid isPermaLink="false">site{feed}-post-{seq}</guid>\n'
        f"      <pubDate>{formatdate(published, usegmt=True)}</pubDate>\n"
        f"      <dc:creator>{rng.choice(_AUTHORS)}</dc:creator>\n"
        f"      <category>{rng.choice(_TOPICS)}</category>\n"
        f"      <description>{description}</description>{media}\n"
        "    </item>\n"
    )


def render_feed(feed: int, state: FeedState, items: int, self_url: str) -> bytes:
    seqs = range(state.added + items - 1, state.added - 1, -1)  # newest first
    newest = T0 + (state.added + items - 1) * 6 * 3600 + feed * 60
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/" '
        'xmlns:atom="http://www.w3.org/2005/Atom" xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        "  <channel>\n"
        f"    <title>Site {feed}: {_TOPICS[feed % len(_TOPICS)]} notes</title>\n"
        f"    <link>https://site{feed}.example/</link>\n"
        f"    <description>Synthetic feed number {feed} for the feedcast polling benchmark</description>\n"
        "    <language>en-us</language>\n"
        f"    <lastBuildDate>{formatdate(newest, usegmt=True)}</lastBuildDate>\n"
        f'    <atom:link href="{self_url}" rel="self" type="application/rss+xml"/>\n'
        + "".join(render_item(feed, s, state.edits.get(s, 0)) for s in seqs)
        + "  </channel>\n</rss>\n"
    )
    return body.encode("utf-8")


@dataclass(frozen=True, slots=True)
class Rendered:
    plain_head: bytes  # full response head for a 200 without compression
    plain: bytes
    gzip_head: bytes
    gzipped: bytes
    not_modified: bytes  # full 304 response (head only)
    etag: str
    modified: float


class Farm:
    def __init__(self, feeds: int, items: int, ports: list[int], use_gzip: bool) -> None:
        self.feeds = feeds
        self.items = items
        self.ports = ports
        self.use_gzip = use_gzip
        self.state: dict[int, FeedState] = {}
        self.rendered: dict[bytes, Rendered] = {}  # b"/f/12.xml" -> Rendered
        self.counts = {"200": 0, "304": 0, "404": 0}
        self._date = b""
        self._date_at = 0.0

    def render_all(self) -> None:
        """Render every feed (call once the ports are known: feeds link to themselves)."""
        for i in range(self.feeds):
            self.state[i] = self._initial(i)
            self._render(i)

    @staticmethod
    def _initial(i: int) -> FeedState:
        return FeedState(modified=float(T0 + i * 60 + 3600 * 24 * 400))

    def url(self, i: int) -> str:
        return f"http://{HOST}:{self.ports[i % len(self.ports)]}/f/{i}.xml"

    def _render(self, i: int) -> None:
        state = self.state[i]
        body = render_feed(i, state, self.items, self.url(i))
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        last_modified = formatdate(state.modified, usegmt=True)
        common = (
            f"ETag: {etag}\r\nLast-Modified: {last_modified}\r\nCache-Control: max-age=300\r\n"
            "Vary: Accept-Encoding\r\n"
        )
        ctype = "Content-Type: application/rss+xml; charset=utf-8\r\n"
        gz = gzip.compress(body, compresslevel=6, mtime=0) if self.use_gzip else body
        self.rendered[f"/f/{i}.xml".encode()] = Rendered(
            plain_head=f"HTTP/1.1 200 OK\r\n{ctype}Content-Length: {len(body)}\r\n{common}".encode(),
            plain=body,
            gzip_head=(
                f"HTTP/1.1 200 OK\r\n{ctype}Content-Length: {len(gz)}\r\nContent-Encoding: gzip\r\n{common}"
            ).encode(),
            gzipped=gz,
            not_modified=f"HTTP/1.1 304 Not Modified\r\n{common}".encode(),
            etag=etag,
            modified=state.modified,
        )

    def date_header(self) -> bytes:
        now = time.time()
        if now - self._date_at >= 1.0:
            self._date_at = now
            self._date = f"Date: {formatdate(now, usegmt=True)}\r\nServer: feedcast-bench-farm\r\n".encode()
        return self._date

    # ------------------------------------------------------------------ control

    def change(self, fraction: float, limit: int | None, seed: int) -> dict[str, object]:
        limit = min(limit or self.feeds, self.feeds)
        count = round(limit * fraction)
        rng = random.Random(seed)
        chosen = sorted(rng.sample(range(limit), count))
        now = float(int(time.time()))
        new, changed = [], []
        for n, i in enumerate(chosen):
            state = self.state[i]
            if n % 2 == 0:
                state.added += 1  # one new item on top, the oldest drops off
                new.append(i)
            else:
                seq = state.added + rng.randrange(self.items)  # edit one of the items in the feed
                state.edits[seq] = state.edits.get(seq, 0) + 1
                changed.append(i)
            state.modified = max(now, state.modified + 1)
            self._render(i)
        return {"new": len(new), "changed": len(changed), "new_feeds": new, "changed_feeds": changed}

    def reset(self) -> dict[str, object]:
        dirty = [i for i, s in self.state.items() if s.added or s.edits]
        for i in dirty:
            self.state[i] = self._initial(i)
            self._render(i)
        return {"reset": len(dirty)}


class FeedProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, GET only, pipelining tolerated."""

    def __init__(self, farm: Farm) -> None:
        self.farm = farm
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > 65536:
                    self._close()
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            if not self._respond(head):
                return

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def _respond(self, head: bytes) -> bool:
        transport = self.transport
        if transport is None:
            return False
        lines = head.split(b"\r\n")
        try:
            method, target, _version = lines[0].split(b" ", 2)
        except ValueError:
            transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self._close()
            return False
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        close = headers.get(b"connection", b"").lower() == b"close"
        farm = self.farm
        route = farm.rendered.get(target.split(b"?", 1)[0]) if method in (b"GET", b"HEAD") else None
        date = farm.date_header()
        tail = b"Connection: close\r\n\r\n" if close else b"\r\n"
        if route is None:
            farm.counts["404"] += 1
            transport.write(b"HTTP/1.1 404 Not Found\r\n" + date + b"Content-Length: 0\r\n" + tail)
        elif _not_modified(headers, route):
            farm.counts["304"] += 1
            transport.write(route.not_modified + date + tail)
        else:
            farm.counts["200"] += 1
            if farm.use_gzip and b"gzip" in headers.get(b"accept-encoding", b""):
                response_head, body = route.gzip_head, route.gzipped
            else:
                response_head, body = route.plain_head, route.plain
            transport.write(response_head + date + tail + (b"" if method == b"HEAD" else body))
        if close:
            self._close()
            return False
        return True


def _not_modified(headers: dict[bytes, bytes], route: Rendered) -> bool:
    inm = headers.get(b"if-none-match")
    if inm is not None:
        if inm.strip() == b"*":
            return True
        tags = {t.strip().removeprefix(b"W/") for t in inm.split(b",")}
        return route.etag.encode() in tags
    ims = headers.get(b"if-modified-since")
    if ims is not None:
        try:
            return int(route.modified) <= int(parsedate_to_datetime(ims.decode("latin-1")).timestamp())
        except (TypeError, ValueError, IndexError):
            return False
    return False


async def _control(
    farm: Farm, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event
) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        payload = json.loads(await reader.readexactly(length)) if length else {}
        status, result = 200, {}
        if (method, target) == ("POST", "/change"):
            result = farm.change(
                float(payload.get("fraction", 0.1)), payload.get("limit"), int(payload.get("seed", 1))
            )
        elif (method, target) == ("POST", "/reset"):
            result = farm.reset()
        elif (method, target) == ("GET", "/stats"):
            result = dict(farm.counts)
        elif (method, target) == ("POST", "/stats/reset"):
            farm.counts = dict.fromkeys(farm.counts, 0)
            result = dict(farm.counts)
        elif (method, target) == ("POST", "/shutdown"):
            stop.set()
            result = {"bye": True}
        else:
            status, result = 404, {"error": f"no {method} {target}"}
        body = json.dumps(result).encode()
        reason = "OK" if status == 200 else "Not Found"
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
    finally:
        writer.close()


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    farm = Farm(args.feeds, args.items, [], not args.no_gzip)
    servers = []
    for _ in range(args.ports):
        server = await loop.create_server(lambda: FeedProtocol(farm), HOST, 0, backlog=1024)
        servers.append(server)
        farm.ports.append(server.sockets[0].getsockname()[1])
    t = time.perf_counter()
    farm.render_all()
    render_s = time.perf_counter() - t
    control = await asyncio.start_server(lambda r, w: _control(farm, r, w, stop), HOST, 0)
    sizes = [len(r.plain) for r in farm.rendered.values()]
    gz = [len(r.gzipped) for r in farm.rendered.values()]
    print(
        json.dumps(
            {
                "control": control.sockets[0].getsockname()[1],
                "ports": farm.ports,
                "feeds": args.feeds,
                "items": args.items,
                "gzip": not args.no_gzip,
                "render_s": round(render_s, 2),
                "mean_body_bytes": sum(sizes) // len(sizes),
                "mean_gzip_bytes": sum(gz) // len(gz),
            }
        ),
        flush=True,
    )
    await stop.wait()
    control.close()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--ports", type=int, default=250, help="listening ports (distinct 'hosts')")
    parser.add_argument("--no-gzip", action="store_true", help="never compress (default: gzip when asked)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
