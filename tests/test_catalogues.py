"""Catalogue parsing: Merchant XML/TSV/CSV, Shopify, WooCommerce, JSON Lines,
product pages and sitemaps.

Three layers:
* golden tests over every catalogue of the redistributable corpus (tests/data/corpus);
* our own fixtures (tests/data/fixtures/catalogues, listed in tests/data/fixtures/MANIFEST.tsv)
  reproducing each quirk of the shared-corpus files we may not redistribute (NOASSERTION
  / OSL), one mirror at least per such file, plus robustness tests (billion laughs, junk);
* an optional sweep over the full shared corpus when it is beside the clone (a skip
  that says so when it is not: nothing here depends on it).
"""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedcast.kernel.models import Item, ParseResult, SourceKind
from sources.catalogues import FORMATS, parse_catalogue, sniff_catalogue
from tests.conftest import (
    CORPUS,
    SHARED_CORPUS,
    SHARED_CORPUS_ABSENT,
    CorpusFile,
    load_manifest,
)
from tests.conftest import FIXTURES as FIXTURE_ROOT

FIXTURES = FIXTURE_ROOT / "catalogues"

# the corpus manifest names formats by what the files are; the parser by how they parse
MANIFEST_FORMATS = {
    "merchant-rss": "merchant-rss",
    "merchant-atom": "merchant-atom",
    "merchant-tsv": "merchant-tsv",
    "csv": "merchant-csv",
    "shopify-json": "shopify-json",
    "retail-jsonl": "jsonl",
    "woocommerce-json": "woocommerce-json",
    "sitemap": "sitemap",
    "jsonld-html": "product-html",
    "microdata-html": "product-html",
}


def _catalogues(root: Path, *, required: bool = True) -> list[CorpusFile]:
    return [entry for entry in load_manifest(root, required=required) if entry.kind == "catalogues"]


def _expected_counts(entry: CorpusFile) -> tuple[int, int]:
    """``(items, next_urls)`` the MANIFEST notes promise for a file."""
    notes = entry.notes
    if m := re.search(r"(\d+) <url> / (\d+) <sitemap>", notes):
        return int(m.group(1)), int(m.group(2))
    for pattern in (
        r"(\d+) data rows",
        r"JSON array of (\d+) products",
        r"(\d+) JSON lines",
        r"; (\d+) (?:items|entries);",
    ):
        if m := re.search(pattern, notes):
            return int(m.group(1)), 0
    if entry.format.endswith("-html"):
        return 1, 0  # a product page shows one product
    raise AssertionError(f"no item count in the notes of {entry.name}")


def _parse_file(path: Path, url: str = "https://shop.example/catalogue", **kw: Any) -> ParseResult:
    return parse_catalogue(path.read_bytes(), url, **kw)


def _by_key(result: ParseResult) -> dict[str, Item]:
    return {item.key: item for item in result.items}


def _check(item: Item, expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        if name == "extra":
            for key, extra_value in value.items():
                assert item.extra.get(key) == extra_value, (item.key, key)
        elif name == "summary_contains":
            assert item.summary is not None and value in item.summary, item.key
        elif name == "media_count":
            assert len(item.media) == value, item.key
        elif name == "variant_count":
            assert len(item.variants) == value, item.key
        else:
            got = getattr(item, name)
            assert got == value, f"{item.key}.{name}: {got!r} != {value!r}"
            if isinstance(value, Decimal):
                assert isinstance(got, Decimal)


def _assert_well_formed(result: ParseResult) -> None:
    assert result.kind is SourceKind.CATALOGUE
    assert result.format in FORMATS
    keys = [item.key for item in result.items]
    assert len(keys) == len(set(keys)), "item keys must be unique within a document"
    for item in result.items:
        assert item.key
        assert item.availability in {None, "in_stock", "out_of_stock", "preorder", "backorder"}
        for amount in (item.price, item.sale_price):
            assert amount is None or isinstance(amount, Decimal)
        if item.sale_price is not None:
            assert item.price is not None and item.sale_price < item.price
        assert item.currency is None or re.fullmatch(r"[A-Z]{3}", item.currency)
        assert item.url is None or item.url.startswith(("http://", "https://"))
        assert item.image is None or item.image.startswith(("http://", "https://"))
    assert not any("parser failed" in w for w in result.warnings), result.warnings


# ------------------------------------------------------------------ golden: corpus

# field expectations for the first item (or the item named by "key") of each file,
# read off the files themselves
CORPUS_EXPECTATIONS: dict[str, dict[str, Any]] = {
    "catalogues/google_base_products_rss2.xml": {
        "key": "1092",
        "title": "Google Mini",
        "url": "http://www.googlestore.com/appliance/GO0123.asp",
        "image": "http://www.googlestore.com/appliance/images/products/GO0144E.jpg",
        "price": Decimal("2995"),
        "currency": "USD",  # legacy Google Base: separate g:price and g:currency
        "brand": "Google",
        "gtin": "12348573",  # g:upc
        "availability": "in_stock",  # from g:quantity 300
        "tags": ("web search", "appliance"),
        "extra": {"condition": "new", "color": "blue", "price_type": "starting"},
    },
    "catalogues/google_base_products_atom.xml": {
        # both entries carry the same <id>: keyed by their links instead
        "key": "http://provider-website.com/item1-info-page.html",
        "title": "Google Mini",
        "url": "http://provider-website.com/item1-info-page.html",
        "price": Decimal("2995"),
        "currency": "USD",
        "brand": "Google",
    },
    "catalogues/google_merch_store_retail.jsonl": {
        "key": "GGCOGOAC101259",
        "title": "#IamRemarkable Pen",
        "url": "https://shop.googlemerchandisestore.com/Google+Redesign/Office/IamRemarkable+Pen",
        "price": Decimal("45.0"),  # priceInfo.originalPrice
        "sale_price": Decimal("16"),  # priceInfo.price
        "currency": "USD",
        "availability": "in_stock",
        "brand": "#IamRemarkable",
        "image": "https://shop.googlemerchandisestore.com/store/20160512512/assets/items/images/GGCOGOAC101259.jpg",
    },
    "catalogues/hebdenbridgetimes_news_sitemap.xml": {
        "key": "http://www.hebdenbridgetimes.co.uk/news/local/video-tour-de-yorkshire-in-calderdale-1-7242580",
        "title": "Tour De Yorkshire passes through Nutclough, Hebden Bridge",  # image:title
        "image": "http://www.hebdenbridgetimes.co.uk/webimage/1.7242578!/image/417104257.jpg_gen/derivatives/landscape_595/417104257.jpg",
    },
    "catalogues/jossandmain_pendant_jsonld.html": {
        "key": "J001109161",
        "title": "Duprey 4-Light Lantern Pendant",
        "url": "https://www.jossandmain.com/lighting/pdp/duprey-4-light-lantern-pendant-j001109161.html",
        "price": Decimal("98.99"),
        "currency": "USD",
        "availability": "in_stock",
        "sku": "J001109161",
        "brand": None,
    },
    "catalogues/potterybarn_sconce_jsonld.html": {
        # offers.price is {} and the page shows no price ("No longer available")
        "title": "Tully Sconce",
        "url": "https://www.potterybarn.com/products/tully-brass-sconce/",
        "price": None,
        "currency": "USD",
        "availability": "out_of_stock",
    },
    "catalogues/etsy_es_listing_jsonld.html": {
        "url": "https://www.etsy.com/es/listing/550571276/el-original-he-y-hay-calabaza-decoracion",
        "price": Decimal("43.90"),  # AggregateOffer lowPrice
        "currency": "EUR",
        "availability": "in_stock",
        "brand": "OliveCreativeCompany",
        "extra": {"high_price": "43.90"},
    },
    "catalogues/monsterpetsupplies_microdata.html": {
        "key": "https://www.monsterpetsupplies.co.uk/cat/cat-flea-tick/johnsons-4-fleas-cats-kittens",
        "title": "Johnsons 4 Fleas Cats & Kittens Tablets",
        "price": Decimal("5.29"),
        "currency": "GBP",
        "availability": "in_stock",
        "brand": "Johnsons",
        "variant_count": 2,
        "extra": {"source": "microdata", "high_price": "9.56"},
    },
}


def _corpus_params(root: Path, *, optional: bool = False) -> list[Any]:
    entries = _catalogues(root, required=not optional)
    if not entries:
        assert optional, f"no catalogues in {root}/MANIFEST.tsv"
        return [pytest.param(None, marks=pytest.mark.skip(reason=SHARED_CORPUS_ABSENT))]
    return [pytest.param(entry, id=entry.name) for entry in entries]


@pytest.mark.parametrize("entry", _corpus_params(CORPUS))
def test_corpus_catalogue(entry: CorpusFile) -> None:
    body = entry.path.read_bytes()
    expected_format = MANIFEST_FORMATS[entry.format]
    assert sniff_catalogue(body, "https://example.com/catalogue") == expected_format
    result = parse_catalogue(body, "https://example.com/catalogue")
    assert result.format == expected_format
    items, children = _expected_counts(entry)
    assert len(result.items) == items
    if result.format == "sitemap":  # (Shopify pages may have next pages too)
        assert len(result.next_urls) == children
    _assert_well_formed(result)
    expected = dict(CORPUS_EXPECTATIONS.get(entry.name, {}))
    assert expected or not result.items, f"add field expectations for {entry.name}"
    key = expected.pop("key", None)
    item = _by_key(result)[key] if key else result.items[0]
    _check(item, expected)


def test_every_corpus_catalogue_has_expectations() -> None:
    names = {entry.name for entry in _catalogues(CORPUS)}
    assert names, "the redistributable corpus has catalogues"
    assert names <= set(CORPUS_EXPECTATIONS)


def test_corpus_duplicate_ids_are_reported() -> None:
    result = _parse_file(CORPUS / "catalogues" / "google_base_products_atom.xml")
    assert [i.url for i in result.items] == [i.key for i in result.items]
    assert any("share the id" in w for w in result.warnings)


def test_corpus_retail_jsonl_counts() -> None:
    result = _parse_file(CORPUS / "catalogues" / "google_merch_store_retail.jsonl")
    states = {item.availability for item in result.items}
    assert states == {"in_stock", "out_of_stock"}
    assert sum(1 for i in result.items if i.availability == "in_stock") == 154
    assert all(item.currency == "USD" for item in result.items)
    assert not result.warnings


@pytest.mark.parametrize("kind", ["feeds", "pages"])
def test_sniff_rejects_feeds_and_pages(kind: str) -> None:
    entries = [e for e in load_manifest(CORPUS) if e.kind == kind]
    assert entries
    for entry in entries:
        assert sniff_catalogue(entry.path.read_bytes(), f"https://example.com/{entry.name}") is None, (
            entry.name
        )


# ------------------------------------------------------------ golden: shared corpus


@pytest.mark.parametrize("entry", _corpus_params(SHARED_CORPUS, optional=True))
def test_shared_corpus_catalogue(entry: CorpusFile) -> None:
    body = entry.path.read_bytes()
    expected_format = MANIFEST_FORMATS[entry.format]
    assert sniff_catalogue(body, "https://example.com/catalogue") == expected_format
    result = parse_catalogue(body, "https://example.com/catalogue")
    assert result.format == expected_format
    items, children = _expected_counts(entry)
    assert len(result.items) == items
    if result.format == "sitemap":  # (Shopify pages may have next pages too)
        assert len(result.next_urls) == children
    _assert_well_formed(result)


def _shared(name: str) -> Path:
    path = SHARED_CORPUS / "catalogues" / name
    assert path.is_file(), f"{path} is listed in the shared corpus's MANIFEST.tsv but missing"
    return path


def _shared_rawhide_snapshots_price_changes() -> None:
    url = "https://rawhidecityleather.com/google-merchant-feed.xml"
    first = _parse_file(_shared("rawhide_merchant_2026-07-23.xml"), url)
    second = _parse_file(_shared("rawhide_merchant_2026-08-19.xml"), url)
    assert (len(first.items), len(second.items)) == (9, 10)
    assert first.format == second.format == "merchant-rss"
    old, new = _by_key(first), _by_key(second)
    assert set(new) - set(old) == {"velcro-patch"}
    assert not set(old) - set(new)
    changed = {k: (old[k].price, new[k].price) for k in old if old[k].price != new[k].price}
    assert changed == {
        "basic-radio-strap": (Decimal("85.00"), Decimal("115.00")),
        "chin-strap": (Decimal("25.00"), Decimal("35.00")),
    }
    for item in [*first.items, *second.items]:
        assert item.currency == "USD"
        assert item.availability == "in_stock"  # "in_stock", underscore form
        assert item.title and item.url  # g:title / g:link only
        assert item.brand == "Rawhide City Leather"
        assert item.extra["identifier_exists"] == "no"
    strap = old["basic-radio-strap"]
    assert strap.title == "Basic Adjustable Radio Strap"
    assert strap.url == "https://rawhidecityleather.com/product-basic-radio-strap"
    assert strap.image == "https://rawhidecityleather.com/assets/img/products/basic-radio-strap.jpg"
    assert first.title == "Rawhide City Leather"


def _shared_rawhide_product_page_matches_second_snapshot() -> None:
    page = _parse_file(_shared("rawhide_product_radio_strap_jsonld.html"), "https://rawhidecityleather.com/x")
    feed = _parse_file(_shared("rawhide_merchant_2026-08-19.xml"))
    (product,) = page.items
    assert product.title == "Basic Adjustable Radio Strap"
    assert product.url == "https://rawhidecityleather.com/product-basic-radio-strap"
    assert (product.price, product.currency) == (Decimal("115.00"), "USD")
    assert product.availability == "in_stock"
    assert product.brand == "Rawhide City Leather"
    assert product.price == _by_key(feed)["basic-radio-strap"].price


def _shared_hardlife_variants() -> None:
    result = _parse_file(_shared("hardlife_merchant_variants.xml"), "https://hrdlf.com/feed.xml")
    assert len(result.items) == 317
    groups = {item.group_id for item in result.items if item.group_id}
    assert sum(1 for item in result.items if item.group_id) == 305
    assert len(groups) == 61
    hoodie = [item for item in result.items if item.group_id == "hoodie-001"]
    assert [item.extra["size"] for item in hoodie][:3] == ["S", "M", "L"]
    first = result.items[0]
    _check(
        first,
        {
            "key": "hoodie-001-s",
            "title": "Human Beings - Black Hoodie",
            "url": "https://hrdlf.com/products/human-beings-black-hoodie",
            "price": Decimal("75.00"),
            "currency": "USD",
            "availability": "in_stock",
            "brand": "Hardlife Apparel Company LTD",
            "extra": {"color": "Black", "gender": "unisex", "age_group": "adult", "condition": "new"},
        },
    )
    assert first.extra["shipping"] == [{"country": "US", "service": "Standard Shipping", "price": "4.99 USD"}]


def _shared_tapgiving_grouped_header() -> None:
    result = _parse_file(_shared("tapgiving_merchant.tsv"), "https://tap.giving/feed.tsv")
    assert result.format == "merchant-tsv"
    assert [i.key for i in result.items] == ["TG-PLATE-100", "TG-PLATE-200", "TG-PLATE-400"]
    first = result.items[0]
    assert (first.price, first.currency, first.availability) == (Decimal("4.50"), "USD", "in_stock")
    assert first.mpn == "TG-NFC-PLATE-100"
    assert first.brand == "Tap.Giving"
    assert first.extra["shipping"] == [
        {
            "country": "US",
            "service": "Standard",
            "price": "0 USD",
            "min_handling_time": "5",
            "max_handling_time": "10",
            "min_transit_time": "5",
            "max_transit_time": "15",
        }
    ]
    assert len(first.media) == 2  # image_link + additional_image_link


def _shared_mylubie_bare_shopify_array() -> None:
    result = _parse_file(_shared("mylubie_products.json"), "https://mylubie.com/products.json")
    assert result.format == "shopify-json"
    assert len(result.items) == 30
    # 30 products = the default page size: there may be a next page
    assert result.next_urls == ("https://mylubie.com/products.json?page=2",)
    first = result.items[0]
    assert first.key == "9969219928404"
    assert first.title == "Baume intime"
    assert first.url == "https://mylubie.com/products/baume-intime-apaisant"
    assert first.brand == "My Lubie"
    assert first.availability == "out_of_stock"  # no variant available
    assert first.price == Decimal("20.00")
    assert first.summary is not None and first.summary.startswith('<p><meta charset="utf-8">')
    assert len(first.variants) == 2
    assert first.tags == ("NOREVIEW", "NOUVEAUTÉ")
    # compare_at_price "0.00" is not a sale
    for item in result.items:
        for variant in item.variants:
            assert variant.sale_price is None or variant.price is not None
    assert all(item.currency is None for item in result.items)


def _shared_magento_csv() -> None:
    result = _parse_file(_shared("magento_luma_gear_bags.csv"), "https://luma.example/import.csv")
    assert result.format == "merchant-csv"
    assert len(result.items) == 14
    first = result.items[0]
    assert (first.key, first.sku, first.title, first.price) == (
        "24-MB01",
        "24-MB01",
        "Joust Duffle Bag",
        Decimal("34"),
    )
    assert first.summary is not None and "<ul>\n<li>Dual top handles.</li>" in first.summary
    assert 'L 29" x W 13" x H 11"' in first.summary  # doubled quotes undone
    assert first.availability == "in_stock"  # qty 100
    assert first.extra["category"] == "Gear\nBags"
    tote = _by_key(result)["24-WB05"]
    assert (tote.price, tote.sale_price) == (Decimal("32"), Decimal("24"))  # special_price


def _shared_caroleshiber_sitemaps() -> None:
    products = _parse_file(_shared("caroleshiber_products_sitemap.xml"), "https://caroleshiber.com/s.xml")
    assert len(products.items) == 695
    keys = {item.key for item in products.items}
    # no principled rule tells junk from products: /none/ and *-delete/ are kept
    assert "https://caroleshiber.com/none/" in keys
    assert all(item.updated is not None for item in products.items)
    index = _parse_file(_shared("caroleshiber_sitemap_index.xml"), "https://caroleshiber.com/sitemap.xml")
    assert index.items == ()
    assert index.next_urls == (
        "https://caroleshiber.com/sitemap_products_1.xml",
        "https://caroleshiber.com/sitemap_categories.xml",
    )


# --------------------------------------------------------------------- fixtures


@pytest.mark.skipif(not _catalogues(SHARED_CORPUS, required=False), reason=SHARED_CORPUS_ABSENT)
def test_shared_corpus_files_in_detail() -> None:
    """The real files behind the fixtures, value by value, when they are beside the clone."""
    for check in (
        _shared_rawhide_snapshots_price_changes,
        _shared_rawhide_product_page_matches_second_snapshot,
        _shared_hardlife_variants,
        _shared_tapgiving_grouped_header,
        _shared_mylubie_bare_shopify_array,
        _shared_magento_csv,
        _shared_caroleshiber_sitemaps,
    ):
        check()


# The shared-corpus files we may not copy, each mirrored by a fixture of ours (the
# "mirrors" column of tests/data/fixtures/MANIFEST.tsv) that reproduces its quirks.
NOT_REDISTRIBUTABLE = {
    "catalogues/rawhide_merchant_2026-07-23.xml",
    "catalogues/rawhide_merchant_2026-08-19.xml",
    "catalogues/rawhide_product_radio_strap_jsonld.html",
    "catalogues/hardlife_merchant_variants.xml",
    "catalogues/tapgiving_merchant.tsv",
    "catalogues/mylubie_products.json",
    "catalogues/magento_luma_gear_bags.csv",
    "catalogues/caroleshiber_products_sitemap.xml",
    "catalogues/caroleshiber_sitemap_index.xml",
}
REDISTRIBUTABLE = re.compile(r"^(MIT|BSD(-[0-9]-Clause)?|Apache-2\.0)$")


def test_every_file_we_may_not_copy_is_mirrored_by_a_fixture() -> None:
    fixtures = load_manifest(FIXTURE_ROOT)  # raises if a listed fixture is missing
    mirrored = {e.mirrors: e.name for e in fixtures if e.mirrors}
    assert set(mirrored) == NOT_REDISTRIBUTABLE
    shared = load_manifest(SHARED_CORPUS, required=False)
    if shared:  # beside the clone: nothing of it may drop out unnoticed
        local = {e.name for e in load_manifest(CORPUS)}
        assert {e.name for e in shared} - local == NOT_REDISTRIBUTABLE
        assert all(not REDISTRIBUTABLE.match(e.license) for e in shared if e.name in NOT_REDISTRIBUTABLE)


def test_the_copied_corpus_is_only_mit_bsd_or_apache() -> None:
    entries = load_manifest(CORPUS)
    assert entries and all(REDISTRIBUTABLE.match(e.license) for e in entries), {e.license for e in entries}


def test_the_fixture_manifest_lists_every_fixture() -> None:
    listed = {e.name for e in load_manifest(FIXTURE_ROOT)}
    on_disk = {
        p.relative_to(FIXTURE_ROOT).as_posix()
        for p in FIXTURE_ROOT.rglob("*")
        if p.is_file() and p.name not in {"README.md", "MANIFEST.tsv"}
    }
    assert listed == on_disk
    assert all(e.license == "Apache-2.0" for e in load_manifest(FIXTURE_ROOT))


@pytest.mark.parametrize("entry", _corpus_params(FIXTURE_ROOT))
def test_fixture_catalogue_counts(entry: CorpusFile) -> None:
    """Each fixture gives what its MANIFEST row says (as the corpus files do)."""
    result = parse_catalogue(entry.path.read_bytes(), "https://example.com/catalogue")
    assert result.format == MANIFEST_FORMATS[entry.format]
    items, children = _expected_counts(entry)
    assert len(result.items) == items
    if result.format == "sitemap":
        assert len(result.next_urls) == children


# --------------------------------------------------------------------- fixtures


def test_fixture_readme_states_licence() -> None:
    text = (FIXTURES / "README.md").read_text(encoding="utf-8")
    assert "original fixtures written for feedcast" in text.lower()
    assert "Apache-2.0" in text


FIXTURE_FORMATS = {
    "merchant_gonly_2026-01-05.xml": "merchant-rss",
    "merchant_gonly_2026-02-05.xml": "merchant-rss",
    "merchant_variants.xml": "merchant-rss",
    "merchant_grouped.tsv": "merchant-tsv",
    "magento_products.csv": "merchant-csv",
    "shopify_products.json": "shopify-json",
    "shopify_products_bare.json": "shopify-json",
    "woocommerce_store_products.json": "woocommerce-json",
    "retail_products.jsonl": "jsonl",
    "sitemap_index.xml": "sitemap",
    "sitemap_products.xml": "sitemap",
    "sitemap_products.xml.gz": "sitemap",
    "product_jsonld.html": "product-html",
    "product_jsonld_empty_price.html": "product-html",
    "product_microdata.html": "product-html",
    "product_group_jsonld.html": "product-html",
    "product_camera_strap_jsonld.html": "product-html",
    "shopify_products_bare_page.json": "shopify-json",
    "sitemap_products_same_lastmod.xml": "sitemap",
}


def test_every_fixture_is_covered() -> None:
    on_disk = {p.name for p in FIXTURES.iterdir() if p.name != "README.md"}
    assert on_disk == set(FIXTURE_FORMATS)


@pytest.mark.parametrize(("name", "fmt"), sorted(FIXTURE_FORMATS.items()))
def test_fixture_sniff_and_parse(name: str, fmt: str) -> None:
    body = (FIXTURES / name).read_bytes()
    assert sniff_catalogue(body, f"https://shop.example/{name}") == fmt
    result = parse_catalogue(body, f"https://shop.example/{name}")
    assert result.format == fmt
    _assert_well_formed(result)
    # a forced format gives the same result
    assert parse_catalogue(body, f"https://shop.example/{name}", format=fmt) == result


def test_merchant_gonly_snapshots() -> None:
    first = _parse_file(FIXTURES / "merchant_gonly_2026-01-05.xml")
    second = _parse_file(FIXTURES / "merchant_gonly_2026-02-05.xml")
    assert (len(first.items), len(second.items)) == (3, 4)
    assert first.title == "Saddle & Stitch Workshop"
    assert first.link == "https://saddle-stitch.example/"
    old, new = _by_key(first), _by_key(second)
    assert set(new) - set(old) == {"glasses-case"}
    _check(
        old["camera-strap"],
        {
            "title": "Padded Camera Strap",
            "url": "https://saddle-stitch.example/product-camera-strap",
            "image": "https://saddle-stitch.example/img/camera-strap.jpg",
            "price": Decimal("60.00"),
            "currency": "USD",
            "availability": "in_stock",
            "brand": "Saddle & Stitch",
            "extra": {
                "condition": "new",
                "identifier_exists": "no",
                "shipping": [{"country": "US", "service": "Ground", "price": "8.00 USD"}],
            },
        },
    )
    assert new["camera-strap"].price == Decimal("75.00")  # price rise
    assert (new["key-fob"].price, new["key-fob"].sale_price) == (Decimal("12.00"), Decimal("9.50"))
    assert new["key-fob"].effective_price == Decimal("9.50")
    assert (old["tool-roll"].availability, new["tool-roll"].availability) == ("out_of_stock", "in_stock")
    assert old["tool-roll"].summary == "<p>Waxed canvas roll with <b>leather</b> ties.</p>"  # CDATA as given
    assert new["glasses-case"].availability == "preorder"
    assert old["camera-strap"].content_hash() != new["camera-strap"].content_hash()
    assert old["key-fob"].content_hash() != new["key-fob"].content_hash()
    for item in [*first.items, *second.items]:  # g:title / g:link only, every one
        assert item.title and item.url and item.url.startswith("https://saddle-stitch.example/product-")
        assert (item.currency, item.brand) == ("USD", "Saddle & Stitch")
    assert not set(old) - set(new)  # nothing left the shop


def test_product_page_matches_the_merchant_feed() -> None:
    """The shop's static product page (two JSON-LD blocks: Product, BreadcrumbList)
    shows the price of the second snapshot, not the first."""
    page = _parse_file(FIXTURES / "product_camera_strap_jsonld.html", "https://saddle-stitch.example/x")
    (product,) = page.items  # the BreadcrumbList is no product
    assert product.title == "Padded Camera Strap"
    assert product.url == "https://saddle-stitch.example/product-camera-strap"
    assert (product.price, product.currency, product.availability) == (Decimal("75.00"), "USD", "in_stock")
    assert product.brand == "Saddle & Stitch"
    first = _by_key(_parse_file(FIXTURES / "merchant_gonly_2026-01-05.xml"))["camera-strap"]
    second = _by_key(_parse_file(FIXTURES / "merchant_gonly_2026-02-05.xml"))["camera-strap"]
    assert product.price == second.price != first.price


def test_merchant_variants_grouped() -> None:
    result = _parse_file(FIXTURES / "merchant_variants.xml")
    assert len(result.items) == 5
    items = _by_key(result)
    tees = [i for i in result.items if i.group_id == "tee-river"]
    assert [t.extra["size"] for t in tees] == ["S", "M", "L"]
    assert [t.availability for t in tees] == ["in_stock", "in_stock", "out_of_stock"]  # "out of stock"
    small = items["tee-river-s"]
    assert small.title == "River Print Tee - Navy"  # plain <title> beside g: fields
    assert small.url == "https://northside-tees.example/products/river-print-tee"
    assert [m.url for m in small.media] == [
        "https://northside-tees.example/img/river-front.jpg",
        "https://northside-tees.example/img/river-back.jpg",  # repeated g:additional_image_link
        "https://northside-tees.example/img/river-detail.jpg",
    ]
    assert small.extra["gender"] == "unisex" and small.extra["age_group"] == "adult"
    cap = items["cap-bridge-os"]
    assert (cap.price, cap.sale_price, cap.currency) == (Decimal("28.00"), Decimal("21.00"), "USD")
    assert (cap.gtin, cap.mpn, cap.availability) == ("0001234567895", "NT-CAP-01", "in_stock")
    assert items["sticker-pack"].group_id is None
    assert {i.group_id for i in result.items} == {"tee-river", "cap-bridge", None}
    assert all(i.extra["condition"] == "new" for i in result.items)
    assert [i.extra.get("color") for i in tees] == ["Navy"] * 3


def test_merchant_feed_of_320_variants() -> None:
    raw = (FIXTURES / "merchant_variants.xml").read_text(encoding="utf-8")
    head, _, rest = raw.partition("<item>")
    body, _, tail = rest.rpartition("</item>")
    items = ("<item>" + body + "</item>").split("</item>")[:-1]
    template = items[0] + "</item>"
    rows = [template.replace("tee-river-s", f"tee-{n}-s") for n in range(320)]
    feed = (head + "\n".join(rows) + tail).encode("utf-8")
    result = parse_catalogue(feed, "https://x.example/feed.xml")  # how fast: bench/speed.py
    assert len(result.items) == 320
    assert len({item.key for item in result.items}) == 320


def test_merchant_tsv_grouped_headers() -> None:
    result = _parse_file(FIXTURES / "merchant_grouped.tsv")
    assert [i.key for i in result.items] == ["BM-100", "BM-200", "PW-STAND"]
    first, second, third = result.items
    assert first.summary == 'Solid brass bookmarks — engraved with a 12" ruler edge.'
    assert first.image == "https://paperweight.example/img/bookmark%20(1).png"
    assert [m.url for m in first.media][1:] == [
        "https://paperweight.example/img/bookmark-2.webp",
        "https://paperweight.example/img/bookmark-3.webp",
    ]
    assert first.extra["shipping"] == [
        {
            "country": "US",
            "service": "Standard",
            "price": "0 USD",
            "min_handling_time": "2",
            "max_handling_time": "5",
        }
    ]
    assert len(second.extra["shipping"]) == 2
    assert second.extra["shipping"][1]["country"] == "CA"
    assert (second.price, second.sale_price, second.currency) == (Decimal("32.00"), Decimal("27.00"), "USD")
    assert (third.availability, third.gtin, third.mpn) == ("out_of_stock", "0012345678905", None)
    assert (first.mpn, first.brand, len(first.media)) == ("PW-BM-100", "Paperweight Co", 3)
    # a comma inside a URL does not split the list
    assert [m.url for m in third.media][1:] == [
        "https://cdn.paperweight.example/image/upload/w_500,h_500/stand-2.png"
    ]
    assert not result.warnings


def test_magento_csv_multiline() -> None:
    result = _parse_file(FIXTURES / "magento_products.csv", "https://bags.example/export/products.csv")
    assert result.format == "merchant-csv"
    assert len(result.items) == 3
    daypack, messenger, pannier = result.items
    assert daypack.key == daypack.sku == "TB-01"
    assert daypack.summary == (
        '<p>A light daypack for long walks.</p>\n<ul>\n<li>Padded straps.</li>\n<li>L 45" x W 28" x H 18".</li>\n</ul>'
    )
    assert daypack.url == "https://bags.example/trail-daypack-20l.html"  # url_key + Magento's suffix
    assert (daypack.price, daypack.sale_price, daypack.availability) == (Decimal("48"), None, "in_stock")
    assert (messenger.price, messenger.sale_price) == (Decimal("65"), Decimal("52"))
    assert messenger.availability == "out_of_stock"  # qty 0
    assert messenger.extra["category"] == "Gear\nBags\nSale"
    assert pannier.sale_price is None  # special_price equal to price is no sale
    assert daypack.currency is None  # a Magento export does not say


def test_shopify_wrapped_compare_at_price() -> None:
    result = _parse_file(FIXTURES / "shopify_products.json", "https://meadow.example/products.json")
    assert len(result.items) == 2
    assert result.next_urls == ()  # 2 products < default limit 30
    assert result.link == "https://meadow.example/"
    cream, soap = result.items
    _check(
        cream,
        {
            "key": "7001001",
            "title": "Lavender Hand Cream",
            "url": "https://meadow.example/products/lavender-hand-cream",
            "price": Decimal("15.00"),  # compare_at_price > price
            "sale_price": Decimal("12.00"),
            "availability": "in_stock",  # one variant available
            "brand": "Meadow Apothecary",
            "image": "https://cdn.shopify.example/files/lavender-1.jpg?v=1",
            "media_count": 2,
            "tags": ("bestseller", "lavender"),
            "variant_count": 2,
            "summary_contains": "<strong>organic lavender</strong>",
            "extra": {"product_type": "Cream", "handle": "lavender-hand-cream"},
        },
    )
    small, big = cream.variants
    assert (small.id, small.sku, small.gtin) == ("41000001", "MA-LAV-50", "3760000000017")
    assert (small.price, small.sale_price, small.availability) == (
        Decimal("15.00"),
        Decimal("12.00"),
        "in_stock",
    )
    assert small.options == {"Size": "50 ml"}
    assert (big.price, big.sale_price, big.availability) == (Decimal("29.00"), None, "out_of_stock")
    assert cream.published is not None and cream.published.utcoffset() is not None
    assert (soap.availability, soap.price, soap.sale_price) == ("out_of_stock", Decimal("18.00"), None)
    assert soap.tags == ("soap", "gift")  # comma-separated string form
    assert soap.sku == "MA-SOAP-3"


def test_shopify_bare_array_of_a_full_page() -> None:
    result = _parse_file(
        FIXTURES / "shopify_products_bare_page.json", "https://rose-argile.example/products.json"
    )
    assert result.format == "shopify-json"
    assert len(result.items) == 30
    # 30 products = the default page size: there may be a next page
    assert result.next_urls == ("https://rose-argile.example/products.json?page=2",)
    first = result.items[0]
    assert (first.key, first.title) == ("8800000000001", "Baume apaisant")
    assert first.url == "https://rose-argile.example/products/baume-apaisant"
    assert first.brand == "Rose & Argile"
    assert first.availability == "out_of_stock"  # no variant available
    assert first.price == Decimal("20.00")
    assert first.summary is not None and first.summary.startswith('<p><meta charset="utf-8">')
    assert len(first.variants) == 2
    assert first.tags == ("NOREVIEW", "NOUVEAUTÉ")
    assert dict(first.variants[0].options) == {"Quantité": "À l'unité"}
    second, third = result.items[1], result.items[2]
    assert (second.price, second.sale_price) == (Decimal("21.00"), None)  # compare_at_price "0.00": no sale
    assert (third.price, third.sale_price) == (Decimal("28.00"), Decimal("22.00"))  # a real one
    assert all(item.currency is None for item in result.items)  # the storefront JSON does not say


def test_shopify_bare_array() -> None:
    result = _parse_file(FIXTURES / "shopify_products_bare.json", "https://meadow.example/products.json")
    oil, balm = result.items
    assert oil.url == "https://meadow.example/products/cedar-beard-oil"
    # the item shows the cheapest buyable variant; the 100 ml one is on sale
    assert (oil.price, oil.sale_price) == (Decimal("16.50"), None)
    assert (oil.variants[1].price, oil.variants[1].sale_price) == (Decimal("45.00"), Decimal("39.00"))
    assert (balm.price, balm.sale_price) == (Decimal("6.00"), None)  # compare_at == price
    assert balm.summary is None


@pytest.mark.parametrize(
    ("url", "count", "expected"),
    [
        ("https://s.example/products.json", 30, ("https://s.example/products.json?page=2",)),
        ("https://s.example/products.json", 29, ()),
        ("https://s.example/products.json?limit=2", 2, ("https://s.example/products.json?limit=2&page=2",)),
        (
            "https://s.example/products.json?limit=250&page=3",
            250,
            ("https://s.example/products.json?limit=250&page=4",),
        ),
        (
            "https://s.example/products.json?limit=999",
            250,
            ("https://s.example/products.json?limit=999&page=2",),
        ),
        ("https://s.example/collections/all/products.json?page=5", 0, ()),
    ],
)
def test_shopify_pagination(url: str, count: int, expected: tuple[str, ...]) -> None:
    products = ",".join(
        f'{{"id": {n}, "title": "P{n}", "handle": "p{n}", "variants": [{{"id": {n}, "price": "1.00"}}]}}'
        for n in range(1, count + 1)
    )
    result = parse_catalogue(f'{{"products": [{products}]}}'.encode(), url)
    assert result.format == "shopify-json"
    assert len(result.items) == count
    assert result.next_urls == expected


def test_woocommerce_minor_units() -> None:
    result = _parse_file(
        FIXTURES / "woocommerce_store_products.json", "https://woodshop.example/wp-json/wc/store/v1/products"
    )
    board, spoon, coasters = result.items
    _check(
        board,
        {
            "key": "101",
            "title": "Oak Chopping Board – Large",  # &#8211; decoded
            "url": "https://woodshop.example/product/oak-chopping-board-large/",
            "price": Decimal("55.00"),
            "sale_price": Decimal("45.00"),
            "currency": "EUR",
            "availability": "in_stock",
            "sku": "WS-OAK-L",
            "brand": "Woodshop",
            "summary": "<p>End-grain oak board.</p>",
            "image": "https://woodshop.example/wp-content/uploads/oak-board.jpg",
            "tags": ("oak",),
            "extra": {"categories": ["Kitchen"]},
        },
    )
    assert board.content is not None and "food-safe oil" in board.content
    assert (spoon.price, spoon.sale_price, spoon.availability) == (Decimal("18.00"), None, "out_of_stock")
    assert spoon.sku is None
    assert [(v.id, dict(v.options)) for v in spoon.variants] == [
        ("103", {"Length": "20-cm"}),
        ("104", {"Length": "30-cm"}),
    ]
    assert coasters.availability == "backorder"
    assert result.next_urls == ()  # 3 < default per_page 10, no header


def test_woocommerce_zero_decimal_currency() -> None:
    body = (
        b'[{"id": 1, "name": "Tea bowl", "permalink": "https://cha.example/p/bowl/",'
        b' "prices": {"price": "3500", "regular_price": "3500", "currency_code": "JPY",'
        b' "currency_minor_unit": 0}, "is_in_stock": true}]'
    )
    (item,) = parse_catalogue(body, "https://cha.example/wp-json/wc/store/v1/products").items
    assert (item.price, item.currency) == (Decimal("3500"), "JPY")


@pytest.mark.parametrize(
    ("url", "headers", "count", "expected"),
    [
        ("https://w.example/wp-json/wc/store/v1/products", {"X-WP-TotalPages": "3"}, 10, "page=2"),
        ("https://w.example/wp-json/wc/store/v1/products?page=3", {"x-wp-totalpages": "3"}, 10, None),
        (
            "https://w.example/wp-json/wc/store/v1/products?page=2&per_page=5",
            {"X-WP-TotalPages": "4"},
            5,
            "page=3",
        ),
        ("https://w.example/wp-json/wc/store/v1/products", {}, 10, "page=2"),  # full page, no header
        ("https://w.example/wp-json/wc/store/v1/products?per_page=20", {}, 12, None),
        ("https://w.example/wp-json/wc/store/v1/products?page=9", {"X-WP-TotalPages": "8"}, 0, None),
    ],
)
def test_woocommerce_pagination(url: str, headers: dict[str, str], count: int, expected: str | None) -> None:
    products = ",".join(
        f'{{"id": {n}, "name": "P{n}", "permalink": "https://w.example/p/{n}/",'
        f' "prices": {{"price": "100", "regular_price": "100", "currency_code": "EUR", "currency_minor_unit": 2}}}}'
        for n in range(1, count + 1)
    )
    result = parse_catalogue(f"[{products}]".encode(), url, headers)
    assert result.format == "woocommerce-json"
    assert len(result.items) == count
    if expected is None:
        assert result.next_urls == ()
    else:
        (next_url,) = result.next_urls
        assert next_url.startswith("https://w.example/wp-json/wc/store/v1/products?")
        assert expected in next_url


def test_jsonl_bad_line_is_a_warning() -> None:
    result = _parse_file(FIXTURES / "retail_products.jsonl")
    assert [i.key for i in result.items] == ["SKU-MUG-01", "SKU-PLATE-02", "simple-1"]
    assert len(result.warnings) == 1 and result.warnings[0].startswith("line 3:")
    mug, plate, simple = result.items
    _check(
        mug,
        {
            "title": "Enamel Camp Mug",
            "url": "https://fieldware.example/p/enamel-camp-mug",
            "price": Decimal("24.0"),
            "sale_price": Decimal("18"),
            "currency": "USD",
            "availability": "in_stock",
            "brand": "Fieldware",
            "image": "https://fieldware.example/img/mug.jpg",
        },
    )
    assert (plate.price, plate.sale_price, plate.availability) == (Decimal("15"), None, "out_of_stock")
    assert (simple.price, simple.currency, simple.availability) == (Decimal("9.99"), "EUR", "in_stock")
    assert simple.image == "https://fieldware.example/img/simple.jpg"


def test_sitemap_with_one_lastmod_keeps_every_url() -> None:
    result = _parse_file(FIXTURES / "sitemap_products_same_lastmod.xml", "https://napkin-rings.example/s.xml")
    keys = [item.key for item in result.items]
    assert len(keys) == 8
    # no principled rule tells junk from products: /none/ and *-delete/ are kept
    assert "https://napkin-rings.example/none/" in keys
    assert "https://napkin-rings.example/beaded-ring-ivory-delete/" in keys
    assert {item.updated for item in result.items} == {datetime(2025, 8, 16, 6, 45, 21, tzinfo=UTC)}


def test_sitemap_index() -> None:
    result = _parse_file(FIXTURES / "sitemap_index.xml", "https://lampshop.example/sitemap.xml")
    assert result.items == ()
    assert result.next_urls == (
        "https://lampshop.example/sitemap_products_1.xml",
        "https://lampshop.example/sitemap_pages.xml.gz",  # relative loc resolved
    )


@pytest.mark.parametrize("name", ["sitemap_products.xml", "sitemap_products.xml.gz"])
def test_sitemap_urlset(name: str) -> None:
    body = (FIXTURES / name).read_bytes()
    assert name.endswith(".xml") or body[:2] == b"\x1f\x8b"
    result = parse_catalogue(body, f"https://lampshop.example/{name}")
    assert [i.key for i in result.items] == [
        "https://lampshop.example/brass-desk-lamp/",
        "https://lampshop.example/paper-pendant/",
        "https://lampshop.example/spring-sale-announced/",
        "https://lampshop.example/none/",
    ]
    assert any("repeated" in w for w in result.warnings)
    lamp, pendant, news, junk = result.items
    assert lamp.url == lamp.key
    assert lamp.title == "Brass Desk Lamp"  # image:title
    assert lamp.image == "https://lampshop.example/img/brass-desk-lamp.jpg"
    assert lamp.updated is not None and lamp.updated.isoformat() == "2026-03-01T08:00:00+00:00"
    assert lamp.extra == {"changefreq": "weekly"}
    assert pendant.title is None and pendant.updated is not None
    assert news.title == "Spring sale announced"  # news:title
    assert news.published is not None and news.published.isoformat() == "2026-03-02T09:00:00+00:00"
    assert news.tags == ("sale", "lamps")
    assert junk.title is None


def test_gzip_body_of_any_format() -> None:
    raw = (FIXTURES / "merchant_variants.xml").read_bytes()
    packed = gzip.compress(raw, mtime=0)
    assert sniff_catalogue(packed, "https://x.example/feed.xml.gz") == "merchant-rss"
    assert parse_catalogue(packed, "https://x.example/feed.xml.gz") == parse_catalogue(
        raw, "https://x.example/feed.xml.gz"
    )


def test_corrupt_gzip_is_a_warning() -> None:
    packed = gzip.compress((FIXTURES / "sitemap_products.xml").read_bytes())
    result = parse_catalogue(packed[: len(packed) // 2], "https://x.example/s.xml.gz", format="sitemap")
    assert result.format == "sitemap"
    assert any("gzip" in w for w in result.warnings)


def test_product_page_jsonld() -> None:
    result = _parse_file(
        FIXTURES / "product_jsonld.html",
        "https://greenhouse-goods.example/products/copper-watering-can?ref=x",
    )
    (item,) = result.items
    _check(
        item,
        {
            "key": "GG-CWC-2L",
            "title": "Copper Watering Can & Rose",
            "url": "https://greenhouse-goods.example/products/copper-watering-can",
            "price": Decimal("49.00"),  # priceSpecification ListPrice
            "sale_price": Decimal("39.00"),
            "currency": "GBP",
            "availability": "in_stock",
            "sku": "GG-CWC-2L",
            "gtin": "5012345678900",
            "mpn": "CWC2",
            "brand": "Greenhouse Goods",
            "image": "https://greenhouse-goods.example/img/can-1.jpg",
            "media_count": 2,
            "extra": {"color": "Copper", "condition": "new", "rating": "4.7", "source": "json-ld"},
        },
    )
    assert result.title == "Copper Watering Can · Greenhouse Goods"
    assert result.link == "https://greenhouse-goods.example/products/copper-watering-can"
    assert result.feeds == ()


def test_product_page_empty_offer_price_falls_back_to_html() -> None:
    result = _parse_file(FIXTURES / "product_jsonld_empty_price.html", "https://lampshop.example/p?id=1")
    (item,) = result.items
    assert (item.price, item.currency, item.availability) == (Decimal("34.50"), "USD", "in_stock")
    assert item.url == item.key == "https://lampshop.example/products/linen-lamp-shade/"  # og:url
    assert not result.warnings


def test_product_page_microdata() -> None:
    result = _parse_file(
        FIXTURES / "product_microdata.html", "https://petpantry.example/cat/treats/salmon-cat-treats"
    )
    (item,) = result.items  # the BreadcrumbList is not a product
    _check(
        item,
        {
            "key": "https://petpantry.example/cat/treats/salmon-cat-treats",
            "title": "Salmon Cat Treats",
            "price": Decimal("2.49"),  # AggregateOffer lowPrice
            "currency": "GBP",
            "availability": "in_stock",
            "brand": "Purrfect",  # nested Brand itemscope
            "image": "https://petpantry.example/img/salmon-treats.jpg",
            "summary": "<p><strong>Salmon treats</strong> baked in small batches.</p>",
            "extra": {"source": "microdata", "high_price": "6.99", "offer_count": "2"},
        },
    )
    small, big = item.variants
    assert (small.id, small.price, small.availability) == ("PP-SAL-60", Decimal("2.49"), "in_stock")
    assert (big.id, big.price, big.availability) == ("PP-SAL-200", Decimal("6.99"), "out_of_stock")
    assert big.title == "Salmon Cat Treats 200 g"


def test_product_group_variants() -> None:
    (item,) = _parse_file(FIXTURES / "product_group_jsonld.html", "https://knits.example/beanie").items
    assert (item.key, item.group_id, item.brand) == ("BEANIE", "BEANIE", "Knits")
    assert [(v.id, v.price, v.availability, dict(v.options)) for v in item.variants] == [
        ("BEANIE-RED", Decimal("25.0"), "out_of_stock", {"color": "Red"}),
        ("BEANIE-GREY", Decimal("22.0"), "in_stock", {"color": "Grey"}),
    ]
    assert (item.price, item.availability) == (Decimal("22.0"), "in_stock")  # cheapest buyable variant


def test_html_without_product_is_not_a_catalogue() -> None:
    page = b"<!DOCTYPE html><html><head><title>Blog</title></head><body><p>Product news</p></body></html>"
    assert sniff_catalogue(page, "https://blog.example/") is None
    result = parse_catalogue(page, "https://blog.example/", format="product-html")
    assert result.items == ()
    assert result.warnings


# ------------------------------------------------------------------------ sniffing


@pytest.mark.parametrize(
    ("body", "url", "headers", "expected"),
    [
        (
            b'<?xml version="1.0"?><rss version="2.0"><channel><item><title>x</title></item></channel></rss>',
            "https://b.example/feed",
            None,
            None,
        ),
        (
            b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>1</id></entry></feed>',
            "https://b.example/atom",
            None,
            None,
        ),
        (
            b'{"version": "https://jsonfeed.org/version/1.1", "title": "x", "items": []}',
            "https://b.example/feed.json",
            None,
            None,
        ),
        (b'{"products": []}', "https://s.example/products.json", None, "shopify-json"),
        (b"[]", "https://w.example/wp-json/wc/store/v1/products?page=4", None, "woocommerce-json"),
        (b"[]", "https://x.example/api/things", None, None),
        (
            b'{"id": "1", "title": "A", "url": "https://x.example/a", "price": 5}\n{"id": "2", "title": "B", "price": 6}\n',
            "https://x.example/export",
            None,
            "jsonl",
        ),
        (b'{"id": "1", "title": "A"}', "https://x.example/products.ndjson", None, "jsonl"),
        (b'{"event": "click", "ts": 1}\n{"event": "view", "ts": 2}\n', "https://x.example/log", None, None),
        (
            b"id,title,price,link\n1,A,5.00 USD,https://x.example/a\n",
            "https://x.example/feed",
            None,
            "merchant-csv",
        ),
        (b'\xef\xbb\xbf"id";"title";"price"\n1;A;5\n', "https://x.example/feed.csv", None, "merchant-csv"),
        (b"name,email,phone\nA,a@x,1\n", "https://x.example/people.csv", None, None),
        (b"Hello, world\n", "https://x.example/", {"Content-Type": "text/plain"}, None),
        (
            b"<urlset><url><loc>https://x.example/</loc></url></urlset>",
            "https://x.example/sitemap.xml",
            None,
            "sitemap",
        ),
        (b"\x1f\x8b\x08\x00garbage", "https://x.example/sitemap.xml.gz", None, None),
        (b"", "https://x.example/", None, None),
    ],
)
def test_sniff_cases(body: bytes, url: str, headers: dict[str, str] | None, expected: str | None) -> None:
    assert sniff_catalogue(body, url, headers) == expected


def test_unknown_document_gives_a_warning() -> None:
    result = parse_catalogue(b"just some text", "https://x.example/")
    assert result.kind is SourceKind.CATALOGUE
    assert result.items == ()
    assert result.warnings


def test_format_aliases_and_unknown_format() -> None:
    body = (FIXTURES / "retail_products.jsonl").read_bytes()
    assert parse_catalogue(body, "https://x.example/", format="retail-jsonl").format == "jsonl"
    result = parse_catalogue(body, "https://x.example/", format="nonsense")
    assert result.format == "jsonl"
    assert any("unknown catalogue format" in w for w in result.warnings)


# ---------------------------------------------------------------------- robustness

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>
<item><g:id>laughs</g:id><g:title>&lol9;</g:title><g:price>1.00 USD</g:price></item>
</channel></rss>"""


def test_billion_laughs_is_not_expanded() -> None:
    result = parse_catalogue(BILLION_LAUGHS, "https://x.example/feed.xml")
    assert result.format == "merchant-rss"
    for item in result.items:
        assert item.title is None or len(item.title) < 1000
    assert len(repr(result)) < 10_000


def test_external_entities_are_not_loaded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE", encoding="utf-8")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>'
        '<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>'
        "<item><g:id>x</g:id><g:title>&xxe;</g:title><g:description>safe</g:description></item>"
        "</channel></rss>"
    ).encode()
    result = parse_catalogue(body, "https://x.example/feed.xml")
    assert "TOP-SECRET-VALUE" not in repr(result)
    assert [i.key for i in result.items] == ["x"]


def test_truncated_merchant_feed_keeps_good_items() -> None:
    raw = (FIXTURES / "merchant_variants.xml").read_bytes()
    cut = raw[: raw.index(b"<g:id>cap-bridge-os</g:id>") + 30]
    result = parse_catalogue(cut, "https://x.example/feed.xml")
    assert result.format == "merchant-rss"
    assert [i.key for i in result.items][:3] == ["tee-river-s", "tee-river-m", "tee-river-l"]
    assert result.warnings


def test_broken_json_is_a_warning() -> None:
    result = parse_catalogue(
        b'{"products": [{"id": 1, "handle": "a", "variants": [', "https://s.example/products.json"
    )
    assert result.format == "shopify-json"
    assert result.items == ()
    assert any("not valid JSON" in w for w in result.warnings)


def test_messy_values_do_not_raise() -> None:
    body = (
        b'{"products": [{"id": null, "title": 5, "handle": null, "variants": [{"price": "n/a", '
        b'"compare_at_price": {}, "available": "maybe"}, "junk"], "images": [null, {"src": 3}], '
        b'"tags": null, "options": ["Size"]}, "junk", {"variants": {}}]}'
    )
    result = parse_catalogue(body, "https://s.example/products.json")
    assert result.format == "shopify-json"
    assert len(result.items) == 2
    _assert_well_formed(result)


@pytest.mark.filterwarnings("ignore::bs4.MarkupResemblesLocatorWarning")
@pytest.mark.filterwarnings("ignore::bs4.XMLParsedAsHTMLWarning")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=400), fmt=st.sampled_from([None, *FORMATS]))
def test_parse_never_raises(body: bytes, fmt: str | None) -> None:
    result = parse_catalogue(body, "https://x.example/p?page=1", format=fmt)
    assert result.kind is SourceKind.CATALOGUE
    sniff_catalogue(body, "https://x.example/")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(
                ["id", "title", "price", "sale_price", "availability", "link", "image_link", "x"]
            ),
            st.one_of(st.text(max_size=12), st.integers(), st.none(), st.booleans()),
            max_size=6,
        ),
        max_size=5,
    )
)
def test_jsonl_records_never_raise(records: list[dict[str, Any]]) -> None:
    import json

    body = "\n".join(json.dumps(r) for r in records).encode()
    result = parse_catalogue(body, "https://x.example/export.jsonl", format="jsonl")
    assert len(result.items) == len(records)
    assert not any("parser failed" in w for w in result.warnings)
