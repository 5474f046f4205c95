"""``--kind auto``: every corpus file is routed to the right parser and gives the
right number of items through the same dispatch the poller uses."""

from __future__ import annotations

import re

import pytest

from feedcast.kernel.models import SourceKind
from sources.detect import detect, parse_document
from tests.conftest import CORPUS, FIXTURES, SHARED_CORPUS, SHARED_CORPUS_ABSENT, CorpusFile, load_manifest

KIND = {"feeds": SourceKind.FEED, "catalogues": SourceKind.CATALOGUE, "pages": SourceKind.PAGE}

# MANIFEST counts that are not the right answer, with the reason
EXPECTED_OVERRIDES = {
    "feeds/illegally_nested_items.xml": 10,  # 10 real items, each with an empty nested <item/>
}


def expected_items(entry: CorpusFile) -> int | None:
    if entry.name in EXPECTED_OVERRIDES:
        return EXPECTED_OVERRIDES[entry.name]
    if entry.kind == "pages":
        return None  # pages are about their feeds; see test_pages.py
    facts = entry.notes[entry.notes.rfind("[") :]  # the measured part: "[... bytes; ...; 20 items; ...]"
    for pattern in (
        r"\b(\d+) (?:items|entries)\b",
        r"(\d+) <url>",
        r"JSON array of (\d+) products",
        r"(\d+) JSON lines",
        r"(\d+) data rows",
    ):
        m = re.search(pattern, facts)
        if m:
            return int(m.group(1))
    if entry.format.endswith("-html"):
        return 1  # a product page
    raise AssertionError(f"no expected count in the MANIFEST notes of {entry.name}")


def _ids(entries: list[CorpusFile]) -> list[str]:
    return [e.name for e in entries]


LOCAL = load_manifest(CORPUS)
OURS = load_manifest(FIXTURES)  # our fixtures, with those mirroring the files we may not copy
SHARED = [e for e in load_manifest(SHARED_CORPUS, required=False) if e.name not in {x.name for x in LOCAL}]


def _check(entry: CorpusFile) -> None:
    body = entry.path.read_bytes()
    url = f"https://example.com/{entry.name}"
    kind, _fmt = detect(body, url)
    assert kind == KIND[entry.kind], f"{entry.name}: detected {kind}, MANIFEST says {entry.kind}"
    result = parse_document(body, url)
    assert result.kind == KIND[entry.kind]
    expected = expected_items(entry)
    if expected is not None:
        assert len(result.items) == expected, result.warnings


@pytest.mark.parametrize("entry", LOCAL, ids=_ids(LOCAL))
def test_auto_detection_and_counts(entry: CorpusFile) -> None:
    _check(entry)


@pytest.mark.parametrize("entry", OURS, ids=_ids(OURS))
def test_auto_detection_and_counts_of_our_fixtures(entry: CorpusFile) -> None:
    _check(entry)


@pytest.mark.skipif(not SHARED, reason=SHARED_CORPUS_ABSENT)
@pytest.mark.parametrize("entry", SHARED, ids=_ids(SHARED))
def test_auto_detection_and_counts_shared_corpus(entry: CorpusFile) -> None:
    _check(entry)


def test_every_corpus_file_is_covered() -> None:
    assert len(LOCAL) == 72
    assert all(e.path.exists() for e in LOCAL)
