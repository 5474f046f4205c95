"""Values into stored columns and stored rows back into models (shared by the store's
repositories)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from feedcast.kernel.models import Item, Media, Variant

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

M = TypeVar("M", bound="DataclassInstance")

# the columns item_from_row reads, in the order of Item's fields (prefix each with a table alias as needed)
ITEM_COLUMNS = (
    "key",
    "title",
    "url",
    "summary",
    "content",
    "image",
    "media",
    "author",
    "published_at",
    "updated_at",
    "tags",
    "price",
    "sale_price",
    "currency",
    "availability",
    "sku",
    "gtin",
    "mpn",
    "brand",
    "group_id",
    "variants",
    "extra",
)


def item_columns(alias: str) -> str:
    return ", ".join(f"{alias}.{c}" for c in ITEM_COLUMNS)


@functools.cache
def _field_names(model: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(model))


def model_from_row(
    model: type[M], row: Sequence[Any], *, utc: Iterable[str] = (), **convert: Callable[[Any], Any]
) -> M:
    """A model (a dataclass) from a row whose columns are its fields in their declared
    order, from the first (the SELECT lists them so); fields past the row's end keep
    their defaults. ``utc`` names the time fields (aware UTC times, or None);
    ``convert`` turns a stored value into its field's, by field name (``tags=tuple``)."""
    names = _field_names(model)
    if len(row) > len(names):
        raise ValueError(f"{len(row)} columns for the {len(names)} fields of {model.__name__}")
    values = dict(zip(names, row, strict=False))
    for name in utc:
        values[name] = _utc(values[name])
    for name, to_field in convert.items():
        values[name] = to_field(values[name])
    return model(**values)


def item_from_row(r: Sequence[Any]) -> Item:
    """An Item from the 22 columns of ITEM_COLUMNS, in order, at the start of ``r``."""
    return model_from_row(
        Item,
        r[: len(ITEM_COLUMNS)],
        utc=("published", "updated"),
        media=_media,
        tags=_tuple,
        price=_plain_price,
        sale_price=_plain_price,
        variants=lambda raw: tuple(
            _variant(v) for v in _loads(raw, list) if isinstance(v, dict) and "id" in v
        ),
        extra=lambda raw: _loads(raw, dict),
    )


def _media(raw: str | None) -> tuple[Media, ...]:
    return tuple(
        Media(**{k: v for k, v in m.items() if k in Media.__dataclass_fields__})
        for m in _loads(raw, list)
        if isinstance(m, dict) and m.get("url")
    )


def _tuple(value: Sequence[Any] | None) -> tuple[Any, ...]:
    """A list column (NULL: empty) as a tuple."""
    return tuple(value or ())


def _loads(raw: str | None, kind: type[Any]) -> Any:
    """A JSON column as ``kind`` (list or dict); empty when NULL or of another shape."""
    value = json.loads(raw) if raw else None
    return value if isinstance(value, kind) else kind()


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _decimal(value: Any) -> Decimal | None:
    return _plain_price(Decimal(str(value))) if value is not None else None


_CENTS = Decimal("0.01")


def _plain_price(value: Decimal | None) -> Decimal | None:
    """A stored price without the column's padding: 249.0000 -> 249.00, 0.1250 -> 0.125."""
    if value is None or not value.is_finite():
        return value
    cents = value.quantize(_CENTS)
    return cents if cents == value else value.normalize()


def _variant(data: Mapping[str, Any]) -> Variant:
    options = data.get("options")
    return Variant(
        id=str(data["id"]),
        title=data.get("title"),
        sku=data.get("sku"),
        gtin=data.get("gtin"),
        price=_decimal(data.get("price")),
        sale_price=_decimal(data.get("sale_price")),
        availability=data.get("availability"),
        options={str(k): str(v) for k, v in options.items()} if isinstance(options, dict) else {},
    )


def to_json(value: Any) -> str | None:
    """A JSON column's text: None for an empty value; decimals, times and dataclasses as
    plain JSON (dataclasses without their empty fields)."""
    if not value:
        return None
    return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return {
            k: getattr(value, k)
            for k in value.__dataclass_fields__
            if getattr(value, k) not in (None, {}, ())
        }
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)
