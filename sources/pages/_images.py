"""The image URL of an ``<img>``: srcset, lazy-loading attributes, ``<picture>``."""

from __future__ import annotations

import re

from bs4 import Tag

from ._document import Page
from ._dom import attribute

__all__ = ["img_src"]


def img_src(img: Tag, page: Page) -> str | None:
    """The best URL of an <img>: largest srcset candidate, lazy-loading attributes,
    src, then the <source>s of its <picture> (often AVIF / WebP, which not every
    channel renders, hence last)."""
    candidates: list[str | None] = [_best_srcset(attribute(img, "data-srcset") or attribute(img, "srcset"))]
    candidates.extend(attribute(img, name) for name in ("data-src", "data-lazy-src", "data-original", "src"))
    # lxml does not know <source> is void: the <img> may end up inside it
    picture = img.find_parent("picture")
    if picture is not None:
        for source in picture.find_all("source"):
            candidates.append(_best_srcset(attribute(source, "srcset") or attribute(source, "data-srcset")))
    for candidate in candidates:
        found = page.resolve(candidate)
        if found:
            return found
    return None


_SRCSET_ENTRY = re.compile(r"\s*([^\s,][^\s]*?)(?:\s+([\d.]+)([wxh]))?\s*(?:,|$)")


def _best_srcset(srcset: str | None) -> str | None:
    """The largest candidate of a ``srcset`` (by width, else density)."""
    if not srcset:
        return None
    best: tuple[float, str] | None = None
    for match in _SRCSET_ENTRY.finditer(srcset):
        candidate = match.group(1).rstrip(",")
        if not candidate:
            continue
        try:
            size = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            size = 1.0
        if best is None or size > best[0]:
            best = (size, candidate)
    return best[1] if best else None
