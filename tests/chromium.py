"""Headless Chromium for the page tests: load a page, read its console, measure it at a
given viewport width (in a frame exactly that wide: Chromium's headless window is at
least 500 px, a phone is 390)."""

from __future__ import annotations

import json
import re
import subprocess
from html import escape, unescape
from pathlib import Path
from typing import Any


def open_in_chromium(page: Path, tmp_path: Path, *extra: str) -> tuple[str, str]:
    """Load ``page`` in headless Chromium; its stdout and the console lines it logged.

    Console messages (console.error, uncaught exceptions, failed loads) come through
    ``--enable-logging=stderr --v=0`` as ``...:CONSOLE...] "message", source: ...`` lines;
    ``test_console_capture_catches_errors`` proves that this channel works with the
    Chromium installed, so a silent console is a real finding, not a broken probe."""
    from tests.test_preview import _chromium  # here: test_preview imports this module

    command = [
        str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000", *extra, page.as_uri(),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    console = "\n".join(line for line in result.stderr.splitlines() if ":CONSOLE" in line)
    return result.stdout, console


def probe(page: Path, tmp_path: Path, width: int, extra_js: str = "{}") -> dict[str, Any]:
    """Open ``page`` in a frame ``width`` px wide and measure it: the frame's width
    (``inner``) and scroll width (``scroll``), the elements whose right edge passes it
    (``wide``), the tick labels shown (``ticks``), and what ``extra_js`` (an expression
    over the frame's window ``w`` and document ``d``) gives, merged in."""
    frame = escape(page.read_text(encoding="utf-8"))
    wrapper = tmp_path / f"probe-{width}.html"
    wrapper.write_text(
        f'<!DOCTYPE html><body style="margin:0"><iframe id="f" style="border:0;width:{width}px;height:2400px"'
        f' srcdoc="{frame}"></iframe><script>'
        "f.onload = () => { const w = f.contentWindow, d = w.document;"
        " const wide = [...d.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w.innerWidth + 0.5)"
        "   .slice(0, 8).map(e => e.tagName + '.' + e.className);"
        " const ticks = [...d.querySelectorAll('.tick')].filter(t => t.offsetParent).map(t => t.innerText);"
        " const base = {inner: w.innerWidth, scroll: d.documentElement.scrollWidth, wide, ticks};"
        f" document.body.dataset.probe = JSON.stringify(Object.assign(base, ({extra_js}))); }};</script>",
        encoding="utf-8",
    )
    dom, console = open_in_chromium(
        wrapper, tmp_path, "--dump-dom", f"--window-size={max(width, 500) + 20},900"
    )
    assert console == "", console
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, dom[-500:]
    return dict(json.loads(unescape(found.group(1))))
