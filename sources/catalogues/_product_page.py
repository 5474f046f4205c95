"""Product pages: schema.org Product in JSON-LD, else in microdata.

The microdata reader follows the WHATWG algorithm closely enough for shop pages
(itemscope / itemtype / itemprop / itemid, nested items, property values from
``content`` / ``href`` / ``src`` / ``datetime`` / text) and turns each item into
the same shape as a JSON-LD object, so one mapper serves both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from bs4 import BeautifulSoup, Tag

from feedcast.kernel.models import Item, Variant
from sources._common import as_list, clean_text, keyed_item, normalize_availability, parse_datetime
from sources._html import jsonld_objects, schema_types

from ._base import (
    currency_or_none,
    first_text,
    json_safe,
    media_list,
    money,
    price_pair,
    text_or_none,
    title_text,
    url_or_none,
)

__all__ = ["PRODUCT_TYPES", "microdata_items", "parse_product_page"]

PRODUCT_TYPES = frozenset(
    {"Product", "ProductGroup", "IndividualProduct", "ProductModel", "SomeProducts", "Vehicle", "Car"}
)
_LIST_PRICE_TYPES = ("ListPrice", "StrikethroughPrice", "MSRP", "SRP")
_MAX_DEPTH = 12


# ---------------------------------------------------------------- microdata


def microdata_items(soup: BeautifulSoup) -> list[dict[str, Any]]:
    """Top-level microdata items (those that are not a property of another item)."""
    out: list[dict[str, Any]] = []
    for el in soup.find_all(itemscope=True):
        if not el.has_attr("itemprop"):
            out.append(_read_item(el, 0))
    return out


def _read_item(el: Tag, depth: int) -> dict[str, Any]:
    item: dict[str, Any] = {}
    itemtype = el.get("itemtype")
    types = (" ".join(itemtype) if isinstance(itemtype, list) else (itemtype or "")).split()
    if types:
        item["@type"] = types if len(types) > 1 else types[0]
    itemid = el.get("itemid")
    if isinstance(itemid, str) and itemid.strip():
        item["@id"] = itemid.strip()
    props: dict[str, list[Any]] = {}
    stack = [c for c in reversed(el.contents) if isinstance(c, Tag)]
    while stack:
        child = stack.pop()
        names = child.get("itemprop")
        scoped = child.has_attr("itemscope")
        if names:
            name_list = (" ".join(names) if isinstance(names, list) else names).split()
            if scoped and depth < _MAX_DEPTH:
                value: Any = _read_item(child, depth + 1)
            else:
                value = _prop_value(child, name_list)
            if value is not None:
                for name in name_list:
                    props.setdefault(name, []).append(value)
        if not scoped:
            stack.extend(c for c in reversed(child.contents) if isinstance(c, Tag))
    for name, values in props.items():
        item[name] = values[0] if len(values) == 1 else values
    return item


_URL_ATTRS = {"a": "href", "area": "href", "link": "href", "img": "src", "audio": "src", "embed": "src"}
_URL_ATTRS |= {"iframe": "src", "source": "src", "track": "src", "video": "src", "object": "data"}


def _prop_value(el: Tag, names: list[str]) -> str | None:
    attr = _URL_ATTRS.get(el.name)
    if el.name == "meta":
        raw: Any = el.get("content")
    elif attr:
        raw = el.get(attr)
    elif el.name in {"data", "meter"} and el.has_attr("value"):
        raw = el.get("value")
    elif el.name == "time" and el.has_attr("datetime"):
        raw = el.get("datetime")
    elif el.has_attr("content"):  # common non-standard use on <span> / <div>
        raw = el.get("content")
    elif "description" in names:  # keep the markup: Item.summary holds HTML as given
        return el.decode_contents().strip() or None
    else:
        return clean_text(el.get_text(" "))
    if isinstance(raw, list):
        raw = " ".join(raw)
    return text_or_none(raw)


# ---------------------------------------------------------------- products


def _products_in(obj: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """Product objects in a JSON-LD / microdata tree; a product's own sub-objects
    (variants, related products) are not searched."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(obj, list):
        for entry in obj:
            yield from _products_in(entry, depth + 1)
    elif isinstance(obj, dict):
        if schema_types(obj) & PRODUCT_TYPES:
            yield obj
            return
        for key, value in obj.items():
            if key not in {"@context", "breadcrumb", "potentialAction"}:
                yield from _products_in(value, depth + 1)


def _name(value: Any) -> str | None:
    """A thing's name: a string, ``{"name": ...}``, or a list of those."""
    for entry in as_list(value):
        if isinstance(entry, dict):
            found = first_text(entry.get("name"), entry.get("@value"))
        else:
            found = text_or_none(entry)
        if found:
            return found
    return None


def _image_urls(value: Any, base: str) -> list[str]:
    out: list[str] = []
    for entry in as_list(value):
        if isinstance(entry, dict):
            entry = first_text(entry.get("url"), entry.get("contentUrl"), entry.get("@id"))
        if found := url_or_none(base, entry):
            out.append(found)
    return out


def _offers(product: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """``(individual offers, the aggregate offer)`` of a product."""
    single: list[dict[str, Any]] = []
    aggregate = None
    for offer in as_list(product.get("offers")):
        if not isinstance(offer, dict):
            continue
        if "AggregateOffer" in schema_types(offer):
            aggregate = aggregate or offer
            single.extend(o for o in as_list(offer.get("offers")) if isinstance(o, dict))
        else:
            single.append(offer)
    return single, aggregate


def _offer_prices(offer: Mapping[str, Any]) -> tuple[Decimal | None, Decimal | None, str | None]:
    """``(current, list price, currency)`` of one Offer."""
    currency = currency_or_none(_name(offer.get("priceCurrency")))
    current, cur = money(first_text(offer.get("price")), currency)
    currency = currency or cur
    regular = None
    for spec in as_list(offer.get("priceSpecification")):
        if not isinstance(spec, dict):
            continue
        spec_currency = currency_or_none(_name(spec.get("priceCurrency"))) or currency
        amount, spec_currency = money(first_text(spec.get("price")), spec_currency)
        if amount is None:
            continue
        price_type = str(first_text(spec.get("priceType")) or "")
        if price_type.rsplit("/", 1)[-1] in _LIST_PRICE_TYPES:
            regular = amount
        elif current is None:
            current = amount
        currency = currency or spec_currency
    return current, regular, currency


def _availability(values: list[Any]) -> str | None:
    states = [s for s in (normalize_availability(_name(v)) for v in values) if s]
    if not states:
        return None
    return "in_stock" if "in_stock" in states else states[0]


def _offer_variant(offer: Mapping[str, Any], index: int) -> Variant:
    current, regular, _ = _offer_prices(offer)
    price, sale = price_pair(current, regular)
    return Variant(
        id=first_text(offer.get("sku"), offer.get("@id"), offer.get("url")) or f"#{index + 1}",
        title=title_text(_name(offer.get("name"))),
        sku=first_text(offer.get("sku")),
        gtin=_gtin(offer),
        price=price,
        sale_price=sale,
        availability=normalize_availability(_name(offer.get("availability"))),
    )


def _product_variant(product: Mapping[str, Any], index: int) -> Variant:
    offers, aggregate = _offers(product)
    priced = [t for t in map(_offer_prices, offers) if t[0] is not None]
    current, regular = (priced[0][0], priced[0][1]) if priced else (None, None)
    if current is None and aggregate is not None:
        current, _ = money(first_text(aggregate.get("lowPrice"), aggregate.get("price")))
    price, sale = price_pair(current, regular)
    options = {
        name: value
        for name in ("color", "size", "material", "pattern")
        if (value := _name(product.get(name))) is not None
    }
    return Variant(
        id=first_text(product.get("sku"), product.get("productID"), product.get("@id"), product.get("url"))
        or f"#{index + 1}",
        title=title_text(_name(product.get("name"))),
        sku=first_text(product.get("sku")),
        gtin=_gtin(product),
        price=price,
        sale_price=sale,
        availability=_availability([o.get("availability") for o in offers]),
        options=options,
    )


def _gtin(obj: Mapping[str, Any]) -> str | None:
    return first_text(*(obj.get(k) for k in ("gtin", "gtin13", "gtin14", "gtin12", "gtin8", "isbn")))


def _product_item(product: Mapping[str, Any], base: str, page_url: str | None, source: str) -> Item:
    offers, aggregate = _offers(product)
    price, sale, currency = _product_prices(offers, aggregate)
    availability = _availability(
        [o.get("availability") for o in offers] + ([aggregate.get("availability")] if aggregate else [])
    )
    variants: list[Variant] = []
    if "ProductGroup" in schema_types(product):
        variants = [
            _product_variant(v, i)
            for i, v in enumerate(as_list(product.get("hasVariant")))
            if isinstance(v, dict)
        ]
    elif len(offers) > 1:
        variants = [_offer_variant(o, i) for i, o in enumerate(offers)]
    # a ProductGroup priced only on its variants: the "from" price
    if price is None and (cheapest := _cheapest(variants)) is not None:
        price, sale = cheapest.price, cheapest.sale_price
    if availability is None and variants:
        availability = _availability([v.availability for v in variants])
    first_offer_url = next((o.get("url") for o in offers if o.get("url")), None)
    url = url_or_none(base, first_text(product.get("url"))) or url_or_none(base, first_text(first_offer_url))
    url = url or page_url
    images = _image_urls(product.get("image"), base)
    extra = {"source": source, **_aggregate_details(aggregate), **_product_details(product, offers)}
    sku = first_text(product.get("sku"))
    title = title_text(_name(product.get("name")))
    summary = first_text(product.get("description"))
    return keyed_item(
        _product_ident(product, sku),
        url,
        title,
        summary,
        image=images[0] if images else None,
        media=media_list(images),
        published=parse_datetime(first_text(product.get("releaseDate"))),
        updated=parse_datetime(first_text(product.get("dateModified"))),
        price=price,
        sale_price=sale,
        currency=currency,
        availability=availability,
        sku=sku,
        gtin=_gtin(product),
        mpn=first_text(product.get("mpn")),
        brand=title_text(_name(product.get("brand")) or _name(product.get("manufacturer"))),
        group_id=_product_group(product),
        variants=tuple(variants),
        extra=json_safe(extra),
    )


def _product_prices(
    offers: list[dict[str, Any]], aggregate: Mapping[str, Any] | None
) -> tuple[Decimal | None, Decimal | None, str | None]:
    """``(price, sale_price, currency)`` of a product: the aggregate offer's low price,
    else the cheapest priced offer."""
    currency: str | None = None
    current: Decimal | None = None
    regular: Decimal | None = None
    if aggregate is not None:
        currency = currency_or_none(_name(aggregate.get("priceCurrency")))
        current, currency = money(first_text(aggregate.get("lowPrice"), aggregate.get("price")), currency)
    priced = [(p, r, c) for p, r, c in map(_offer_prices, offers) if p is not None]
    if current is None and priced:
        current, regular, cur = min(priced, key=lambda t: t[0] or Decimal(0))
        currency = currency or cur
    if currency is None:
        currency = next((c for _, _, c in map(_offer_prices, offers) if c), None)
    price, sale = price_pair(current, regular)
    return price, sale, currency


def _cheapest(variants: list[Variant]) -> Variant | None:
    """The cheapest priced variant, of those in stock if any are."""
    buyable = [v for v in variants if v.availability == "in_stock"] or variants
    with_price = [v for v in buyable if v.price is not None]
    return min(with_price, key=lambda v: v.sale_price or v.price or Decimal(0)) if with_price else None


def _aggregate_details(aggregate: Mapping[str, Any] | None) -> dict[str, Any]:
    """The aggregate offer's high price and offer count, for ``Item.extra``."""
    details: dict[str, Any] = {}
    if aggregate is not None:
        high, _ = money(first_text(aggregate.get("highPrice")))
        if high is not None:
            details["high_price"] = str(high)
        if count := first_text(aggregate.get("offerCount"), aggregate.get("offercount")):
            details["offer_count"] = count
    return details


def _product_details(product: Mapping[str, Any], offers: list[dict[str, Any]]) -> dict[str, Any]:
    """Options, category, model, condition and rating of a product, for ``Item.extra``."""
    details: dict[str, Any] = {}
    for name in ("color", "size", "material", "pattern", "category", "model", "productID"):
        if (value := _name(product.get(name))) is not None:
            details[name] = value
    conditions = [o.get("itemCondition") for o in offers if o.get("itemCondition")]
    if condition := _name(conditions or product.get("itemCondition")):
        details["condition"] = condition.rsplit("/", 1)[-1].removesuffix("Condition").lower()
    rating = product.get("aggregateRating")
    if isinstance(rating, dict) and (value := first_text(rating.get("ratingValue"))):
        details["rating"] = value
        if count := first_text(rating.get("reviewCount"), rating.get("ratingCount")):
            details["rating_count"] = count
    return details


def _product_ident(product: Mapping[str, Any], sku: str | None) -> str | None:
    ident_id = first_text(product.get("@id"))
    if ident_id and ident_id.startswith("#"):
        ident_id = None  # a page-local node id identifies nothing across pages
    return sku or first_text(product.get("productID"), product.get("productGroupID")) or ident_id


def _product_group(product: Mapping[str, Any]) -> str | None:
    group = first_text(product.get("productGroupID"), product.get("inProductGroupWithID"))
    parent = product.get("isVariantOf")
    if group is None and isinstance(parent, dict):
        group = first_text(parent.get("productGroupID"), parent.get("sku"), parent.get("@id"))
    return group


def _meta_map(soup: BeautifulSoup) -> dict[str, str]:
    """``<meta property|name|itemprop=... content=...>`` of a page, first value of each."""
    found: dict[str, str] = {}
    for el in soup.find_all("meta"):
        content = text_or_none(el.get("content"))
        if content is None:
            continue
        for attr in ("property", "name", "itemprop"):
            key = el.get(attr)
            if isinstance(key, str) and key.strip():
                found.setdefault(key.strip().lower(), content)
    return found


def _meta(metas: Mapping[str, str], *names: str) -> str | None:
    return next((metas[name.lower()] for name in names if name.lower() in metas), None)


def _html_price(soup: BeautifulSoup, metas: Mapping[str, str]) -> tuple[Decimal | None, str | None]:
    """A price shown in the page itself, for JSON-LD whose offer lacks one."""
    currency = currency_or_none(_meta(metas, "product:price:currency", "og:price:currency", "priceCurrency"))
    candidates: list[str] = []
    if amount := _meta(metas, "product:price:amount", "og:price:amount"):
        candidates.append(amount)
    for el in soup.find_all(itemprop=True):
        names = el.get("itemprop")
        names_list = (" ".join(names) if isinstance(names, list) else str(names)).split()
        raw = el.get("content") or el.get_text(" ")
        if not isinstance(raw, str):
            continue
        if "price" in names_list:
            candidates.append(raw)
        elif "priceCurrency" in names_list and currency is None:
            currency = currency_or_none(raw.strip())
    for raw in candidates:
        value, cur = money(raw, currency)
        if value is not None:
            return value, cur
    return None, currency


_CANONICAL = re.compile(r"\bcanonical\b", re.I)


def parse_product_page(
    soup: BeautifulSoup, url: str, warnings: list[str]
) -> tuple[list[Item], str | None, str | None]:
    """``(items, title, link)`` of a product page."""
    base_el = soup.find("base", href=True)
    if isinstance(base_el, Tag) and (base_href := url_or_none(url, base_el.get("href"))):
        url = base_href
    canonical = None
    link_el = soup.find("link", attrs={"rel": _CANONICAL})
    if isinstance(link_el, Tag):
        canonical = url_or_none(url, link_el.get("href"))
    metas = _meta_map(soup)
    page_url = canonical or url_or_none(url, _meta(metas, "og:url")) or url_or_none(None, url)
    products = [p for obj in jsonld_objects(soup, warnings) for p in _products_in(obj)]
    source = "json-ld"
    if not products:
        products = [p for obj in microdata_items(soup) for p in _products_in(obj)]
        source = "microdata"
    items = [_product_item(p, url, page_url, source) for p in products]
    if len(items) == 1 and items[0].price is None:
        price, currency = _html_price(soup, metas)
        if price is not None:
            only = items[0]
            items = [replace(only, price=price, currency=only.currency or currency)]
        else:
            warnings.append("the product has no price (none in its offers nor in the page)")
    if not items:
        warnings.append("no schema.org Product found in JSON-LD or microdata")
    title_el = soup.find("title")
    title = clean_text(title_el.get_text()) if isinstance(title_el, Tag) else None
    return items, title, page_url
