"""Shop platform JSON APIs: Shopify ``/products.json`` and the WooCommerce Store
API ``/wp-json/wc/store/v1/products`` (the legacy ``/wp-json/wc/v3`` shape too)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from feedcast.kernel.models import Item, Media, Variant
from sources._common import as_list, clean_text, header, item_key, normalize_availability, parse_datetime

from ._base import (
    currency_or_none,
    first_text,
    int_or_none,
    json_safe,
    media_list,
    minor_units,
    money,
    page_params,
    price_pair,
    text_or_none,
    title_text,
    url_or_none,
    with_query,
)

__all__ = ["parse_shopify", "parse_woocommerce"]

SHOPIFY_DEFAULT_LIMIT = 30
SHOPIFY_MAX_LIMIT = 250
WOO_DEFAULT_PER_PAGE = 10
WOO_MAX_PER_PAGE = 100


def _site_root(url: str) -> str | None:
    return url_or_none(url, "/")


def _product_list(data: Any, single: Callable[[dict[str, Any]], Any]) -> list[Any] | None:
    """The product objects of a document: ``{"products": [...]}``, a bare array, or
    the one product ``single`` finds in an object; None when there are none."""
    if isinstance(data, dict) and isinstance(data.get("products"), list):
        products: list[Any] = data["products"]
        return products
    if isinstance(data, dict) and (product := single(data)) is not None:
        return [product]
    if isinstance(data, list):
        return data
    return None


def _products(
    products: list[Any], build: Callable[[Mapping[str, Any], str], Item], url: str, warnings: list[str]
) -> list[Item]:
    """One Item per product object; anything else in the list is skipped with a warning."""
    items: list[Item] = []
    for index, product in enumerate(products):
        if not isinstance(product, dict):
            warnings.append(f"product {index + 1} is not an object; skipped")
            continue
        items.append(build(product, url))
    return items


# ----------------------------------------------------------------------- Shopify


def parse_shopify(data: Any, url: str, warnings: list[str]) -> tuple[list[Item], str | None, tuple[str, ...]]:
    """``(items, link, next_urls)`` of a Shopify products document."""
    products = _product_list(
        data, lambda doc: doc["product"] if isinstance(doc.get("product"), dict) else None
    )
    if products is None:
        warnings.append("no Shopify products found (expected {'products': [...]} or an array)")
        return [], _site_root(url), ()
    items = _products(products, _shopify_item, url, warnings)
    next_urls: tuple[str, ...] = ()
    if url_or_none(None, url) and not (isinstance(data, dict) and "product" in data):
        page, limit = page_params(url, "limit", SHOPIFY_DEFAULT_LIMIT, SHOPIFY_MAX_LIMIT)
        if products and len(products) >= limit:
            next_urls = (with_query(url, page=page + 1),)
    return items, _site_root(url), next_urls


def _shopify_variant(v: Mapping[str, Any], option_names: list[str]) -> Variant:
    current, _ = money(v.get("price"))
    compare, _ = money(v.get("compare_at_price"))
    price, sale = price_pair(current, compare)
    options: dict[str, str] = {}
    for position in (1, 2, 3):
        value = text_or_none(v.get(f"option{position}"))
        if value is None:
            continue
        name = option_names[position - 1] if position <= len(option_names) else f"option{position}"
        options[name] = value
    available = v.get("available")
    return Variant(
        id=str(v.get("id") or v.get("sku") or ":".join(options.values()) or "?"),
        title=title_text(v.get("title")),
        sku=text_or_none(v.get("sku")),
        gtin=text_or_none(v.get("barcode")),
        price=price,
        sale_price=sale,
        availability=normalize_availability(available) if isinstance(available, bool | str) else None,
        options=options,
    )


def _shopify_item(p: Mapping[str, Any], base: str) -> Item:
    option_names: list[str] = []
    for option in as_list(p.get("options")):
        if isinstance(option, dict):
            option_names.append(str(option.get("name") or f"option{len(option_names) + 1}"))
        else:
            option_names.append(str(option))
    variants = tuple(
        _shopify_variant(v, option_names) for v in as_list(p.get("variants")) if isinstance(v, dict)
    )
    # the item shows the "from" offer: the cheapest variant that can be bought
    buyable = [v for v in variants if v.availability == "in_stock"] or list(variants)
    priced = [(v.sale_price if v.sale_price is not None else v.price, v) for v in buyable]
    priced = [(amount, v) for amount, v in priced if amount is not None]
    chosen = min(priced, key=lambda pair: pair[0] or Decimal(0))[1] if priced else None
    states = [v.availability for v in variants if v.availability]
    availability = None
    if states:
        availability = "in_stock" if "in_stock" in states else states[0]
    images: list[Media] = []
    for image in as_list(p.get("images")) or as_list(p.get("image")):
        src = url_or_none(base, image.get("src") if isinstance(image, dict) else image)
        if src is None:
            continue
        width = int_or_none(image.get("width")) if isinstance(image, dict) else None
        height = int_or_none(image.get("height")) if isinstance(image, dict) else None
        alt = clean_text(image.get("alt")) if isinstance(image, dict) else None
        images.append(Media(url=src, width=width, height=height, title=alt))
    handle = text_or_none(p.get("handle"))
    url = url_or_none(base, f"/products/{handle}") if handle else None
    tags = p.get("tags")
    tag_list = tags.split(",") if isinstance(tags, str) else as_list(tags)
    extra: dict[str, Any] = {}
    for name in ("product_type", "handle"):
        if value := text_or_none(p.get(name)):
            extra[name] = value
    if option_names:
        extra["options"] = option_names
    single = variants[0] if len(variants) == 1 else None
    title = title_text(p.get("title"))
    return Item(
        key=item_key(p.get("id"), url, title),
        title=title,
        url=url,
        summary=text_or_none(p.get("body_html")),
        image=images[0].url if images else None,
        media=media_list(images),
        published=parse_datetime(text_or_none(p.get("published_at")) or text_or_none(p.get("created_at"))),
        updated=parse_datetime(text_or_none(p.get("updated_at"))),
        tags=tuple(t for t in (clean_text(x) for x in tag_list) if t),
        price=chosen.price if chosen else None,
        sale_price=chosen.sale_price if chosen else None,
        currency=None,  # /products.json never says; the shop's currency is configuration
        availability=availability,
        sku=single.sku if single else None,
        gtin=single.gtin if single else None,
        brand=title_text(p.get("vendor")),
        variants=variants,
        extra=json_safe(extra),
    )


# ------------------------------------------------------------------- WooCommerce


def parse_woocommerce(
    data: Any, url: str, headers: Mapping[str, str] | None, warnings: list[str]
) -> tuple[list[Item], str | None, tuple[str, ...]]:
    """``(items, link, next_urls)`` of a WooCommerce products page."""
    products = _product_list(
        data, lambda doc: doc if "id" in doc and ("prices" in doc or "permalink" in doc) else None
    )
    if products is None:
        warnings.append("no WooCommerce products found (expected an array)")
        return [], _site_root(url), ()
    items = _products(products, _woo_item, url, warnings)
    next_urls: tuple[str, ...] = ()
    if url_or_none(None, url) and isinstance(data, list):
        page, per_page = page_params(url, "per_page", WOO_DEFAULT_PER_PAGE, WOO_MAX_PER_PAGE)
        total_pages = int_or_none(header(headers, "X-WP-TotalPages"))
        more = page < total_pages if total_pages is not None else len(products) >= per_page > 0
        if more and products:
            next_urls = (with_query(url, page=page + 1),)
    return items, _site_root(url), next_urls


def _woo_prices(p: Mapping[str, Any]) -> tuple[Decimal | None, Decimal | None, str | None]:
    prices = p.get("prices")
    if isinstance(prices, dict):  # Store API: strings in minor units
        unit = prices.get("currency_minor_unit", 2)
        current = minor_units(prices.get("price"), unit)
        regular = minor_units(prices.get("regular_price"), unit)
        price, sale = price_pair(current, regular)
        return price, sale, currency_or_none(prices.get("currency_code"))
    # REST API v3: decimal strings, currency only at shop level
    current, _ = money(p.get("price"))
    regular, _ = money(p.get("regular_price"))
    sale_given, _ = money(p.get("sale_price"))
    if sale_given is not None and current is None:
        current = sale_given
    price, sale = price_pair(current, regular)
    return price, sale, None


def _woo_availability(p: Mapping[str, Any]) -> str | None:
    if p.get("is_on_backorder") is True:
        return normalize_availability("backorder")
    stock = p.get("stock_availability")
    if isinstance(stock, dict) and (found := normalize_availability(stock.get("class"))):
        return found
    if isinstance(p.get("is_in_stock"), bool):
        return normalize_availability(p["is_in_stock"])
    return normalize_availability(p.get("stock_status"))


def _woo_item(p: Mapping[str, Any], base: str) -> Item:
    price, sale, currency = _woo_prices(p)
    images: list[Media] = []
    for image in as_list(p.get("images")):
        if isinstance(image, dict) and (src := url_or_none(base, image.get("src"))):
            images.append(Media(url=src, title=clean_text(image.get("alt")) or clean_text(image.get("name"))))
    tags = [
        clean_text(t.get("name")) for t in as_list(p.get("tags")) if isinstance(t, dict) and t.get("name")
    ]
    brands = [b.get("name") for b in as_list(p.get("brands")) if isinstance(b, dict) and b.get("name")]
    url = url_or_none(base, p.get("permalink"))
    title = title_text(p.get("name"))
    short = text_or_none(p.get("short_description"))
    description = text_or_none(p.get("description"))
    return Item(
        key=item_key(p.get("id"), url, title),
        title=title,
        url=url,
        summary=short or description,
        content=description if short else None,
        image=images[0].url if images else None,
        media=media_list(images),
        published=parse_datetime(text_or_none(p.get("date_created_gmt") or p.get("date_created"))),
        updated=parse_datetime(text_or_none(p.get("date_modified_gmt") or p.get("date_modified"))),
        tags=tuple(t for t in tags if t),
        price=price,
        sale_price=sale,
        currency=currency,
        availability=_woo_availability(p),
        sku=first_text(p.get("sku")),
        brand=title_text(brands[0]) if brands else None,
        group_id=text_or_none(p.get("parent")) if p.get("parent") not in (None, 0, "0") else None,
        variants=_woo_variants(p),
        extra=json_safe(_woo_extra(p)),
    )


def _woo_variants(p: Mapping[str, Any]) -> tuple[Variant, ...]:
    """The variations of a product, with their attribute options (bare ids in REST v3)."""
    variants: list[Variant] = []
    for v in as_list(p.get("variations")):
        if isinstance(v, dict):
            options = {
                str(a.get("name")): str(a.get("value"))
                for a in as_list(v.get("attributes"))
                if isinstance(a, dict) and a.get("name") is not None and a.get("value") is not None
            }
            variants.append(Variant(id=str(v.get("id")), options=options))
        elif (vid := text_or_none(v)) is not None:  # REST v3: bare variation ids
            variants.append(Variant(id=vid))
    return tuple(variants)


def _woo_extra(p: Mapping[str, Any]) -> dict[str, Any]:
    """Categories, type, rating, stock and attributes of a product, for ``Item.extra``."""
    categories = [
        c.get("name") for c in as_list(p.get("categories")) if isinstance(c, dict) and c.get("name")
    ]
    extra: dict[str, Any] = {}
    if categories:
        extra["categories"] = [title_text(c) for c in categories]
    for name in ("slug", "type", "average_rating", "review_count", "low_stock_remaining"):
        value = p.get(name)
        if value not in (None, "", [], {}):
            extra[name] = value
    attributes = {
        str(a.get("name")): [
            str(t.get("name")) for t in as_list(a.get("terms")) if isinstance(t, dict) and t.get("name")
        ]
        for a in as_list(p.get("attributes"))
        if isinstance(a, dict) and a.get("name")
    }
    if attributes:
        extra["attributes"] = attributes
    return extra
