"""HTML helpers shared by page and product-page parsers: soup and JSON-LD."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from bs4 import BeautifulSoup

from sources._common import decode_text

__all__ = ["jsonld_objects", "make_soup", "schema_types"]


def make_soup(body: bytes, headers: Mapping[str, str] | None = None) -> BeautifulSoup:
    """Parse HTML leniently (lxml), decoding by BOM / header / meta charset."""
    return BeautifulSoup(decode_text(body, headers), "lxml")


_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def jsonld_objects(soup: BeautifulSoup, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Every JSON-LD object on the page, with ``@graph`` and top-level lists flattened.

    Broken blocks (HTML comments around them, trailing commas, control characters)
    are repaired where that is safe, else reported in ``warnings`` and skipped.
    """
    found: list[dict[str, Any]] = []
    for index, script in enumerate(soup.find_all("script", attrs={"type": re.compile("ld\\+json", re.I)})):
        raw = (script.string or script.get_text() or "").strip()
        raw = raw.removeprefix("<!--").removesuffix("-->").strip()
        raw = raw.removeprefix("//<![CDATA[").removesuffix("//]]>").strip()
        if not raw:
            continue
        data: Any
        try:
            data = json.loads(raw, strict=False)
        except json.JSONDecodeError:
            try:
                data = json.loads(_TRAILING_COMMA.sub(r"\1", raw), strict=False)
            except json.JSONDecodeError as exc:
                if warnings is not None:
                    warnings.append(f"JSON-LD block {index + 1} is not valid JSON: {exc.msg}")
                continue
        found.extend(_flatten(data))
    return found


def _flatten(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for entry in data:
            yield from _flatten(entry)
    elif isinstance(data, dict):
        graph = data.get("@graph")
        if isinstance(graph, list):
            yield from _flatten(graph)
            rest = {k: v for k, v in data.items() if k != "@graph"}
            if "@type" in rest:
                yield rest
        else:
            yield data


def schema_types(obj: Mapping[str, Any]) -> set[str]:
    """The schema.org types of a JSON-LD object, without prefixes: {"Product"}."""
    raw = obj.get("@type")
    values = raw if isinstance(raw, list) else [raw]
    return {str(v).rsplit("/", 1)[-1].rsplit(":", 1)[-1] for v in values if v}
