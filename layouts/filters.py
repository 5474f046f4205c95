"""Jinja filters for layouts: sanitising item HTML per channel, excerpts, money and dates.

Every filter is a plain function, usable outside templates too. Those that depend on
the locale or the time zone (``money``, ``percent``, ``date``, ``datetime``) read them
from :func:`settings`, which the renderer sets for the duration of one render
(:func:`using`); outside a render they use ``en`` / ``UTC``.

Item HTML fields reach templates as :class:`HtmlText` (a ``str`` that remembers the
item's URL), so ``{{ item.summary|telegram }}`` resolves relative links and images
against the item without the template having to pass it.

======================  ==========================================================
filter                  result
======================  ==========================================================
``telegram``            item HTML sanitised to Telegram's HTML subset (safe markup)
``email_html``          item HTML sanitised for email (safe markup)
``plain``               item HTML as plain text (``links=True`` keeps link targets)
``excerpt(n)``          plain text of at most ``n`` characters, cut at a word boundary
``truncate_words(n)``   plain text of at most ``n`` words
``money(currency)``     ``1299`` -> ``€1,299.00`` (en) / ``1 299,00 €`` (fr), by Babel
                        (a right-to-left locale's ends in a left-to-right mark)
``percent``             ``0.23`` -> ``23%`` (en) / ``23 %`` (fr)
``date(format)``        a date in the render's time zone and locale (``medium``:
                        ``Nov 25, 2026`` / ``25 nov. 2026``), by Babel
``datetime(format)``    the same with the time of day
``availability``        ``in_stock`` -> ``In stock`` (``En stock`` in fr: :mod:`layouts.i18n`)
``mrkdwn``              plain text escaped for Slack mrkdwn (``& < >``)
``slack_link(url)``     ``<url|text>`` for Slack
``md``                  plain text escaped for Discord markdown
``md_link(url)``        ``[text](<url>)`` for Discord
``item_data``           an item as a JSON-ready dict (``payload({"item": item|item_data})``)
======================  ==========================================================
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import babel.dates
import babel.numbers
from babel import Locale, UnknownLocaleError
from markupsafe import Markup

from feedcast.kernel.errors import InvalidValue
from layouts.html import email_html as _email_html
from layouts.html import plain_text, telegram_html
from layouts.i18n import N_, gettext
from layouts.text import truncate_text

__all__ = [
    "FILTERS",
    "FilterSettings",
    "HtmlText",
    "availability",
    "date",
    "datetime",
    "email_html",
    "excerpt",
    "item_data",
    "md",
    "md_link",
    "money",
    "mrkdwn",
    "parse_locale",
    "parse_timezone",
    "percent",
    "plain",
    "settings",
    "slack_link",
    "telegram",
    "truncate_words",
    "using",
]

ELLIPSIS = "…"
_LRM = "\u200e"  # Unicode left-to-right mark


class HtmlText(str):
    """An HTML field of an item that remembers the URL its relative links resolve against."""

    base_url: str | None

    def __new__(cls, value: str, base_url: str | None = None) -> HtmlText:
        self = super().__new__(cls, value)
        self.base_url = base_url
        return self


@dataclass(frozen=True, slots=True)
class FilterSettings:
    locale: Locale
    timezone: ZoneInfo


def parse_locale(name: str) -> Locale:
    """``fr``, ``fr_FR`` or ``fr-FR`` -> a Babel Locale; InvalidValue when unknown."""
    try:
        return Locale.parse(name.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError) as exc:
        raise InvalidValue(f"unknown locale {name!r}") from exc


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA zone name (``Europe/Paris``) -> ZoneInfo; InvalidValue when unknown."""
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise InvalidValue(f"unknown time zone {name!r}") from exc


_DEFAULT = FilterSettings(Locale.parse("en"), ZoneInfo("UTC"))
_SETTINGS: ContextVar[FilterSettings] = ContextVar("feedcast_filter_settings", default=_DEFAULT)


def settings() -> FilterSettings:
    """The locale and time zone of the render in progress (``en`` / ``UTC`` outside one)."""
    return _SETTINGS.get()


@contextmanager
def using(locale: Locale, timezone: ZoneInfo) -> Iterator[FilterSettings]:
    """Make ``locale`` and ``timezone`` the filters' settings inside the ``with`` block."""
    current = FilterSettings(locale, timezone)
    token = _SETTINGS.set(current)
    try:
        yield current
    finally:
        _SETTINGS.reset(token)


def _missing(value: object) -> bool:
    """None, Jinja's Undefined and the empty string all mean "nothing to show"."""
    return value is None or value == "" or type(value).__name__.endswith("Undefined")


def _base(value: object, base_url: str | None) -> str | None:
    return base_url if base_url else getattr(value, "base_url", None)


# ---------------------------------------------------------------------------- item HTML


def telegram(value: object, base_url: str | None = None) -> Markup:
    """Item HTML -> Telegram's HTML subset (marked safe: autoescape leaves it alone)."""
    if _missing(value):
        return Markup("")
    return Markup(telegram_html(str(value), _base(value, base_url)))  # noqa: S704 - sanitised


def email_html(value: object, base_url: str | None = None) -> Markup:
    """Item HTML -> HTML safe for email (no scripts, handlers, ``javascript:`` URLs)."""
    if _missing(value):
        return Markup("")
    return Markup(_email_html(str(value), _base(value, base_url)))  # noqa: S704 - sanitised


def plain(value: object, base_url: str | None = None, links: bool = False) -> str:
    """Item HTML -> plain text (paragraphs kept as blank lines)."""
    if _missing(value):
        return ""
    return plain_text(str(value), _base(value, base_url), links=links)


def _one_line(value: object) -> str:
    if _missing(value):
        return ""
    text = plain(value) if "<" in str(value) or "&" in str(value) else str(value)
    return " ".join(text.split())


def excerpt(value: object, length: int = 200, ellipsis: str = ELLIPSIS) -> str:
    """A one-paragraph plain-text excerpt of ``value`` (HTML or text) of at most
    ``length`` characters, cut at a word boundary, ``ellipsis`` appended when cut."""
    return truncate_text(_one_line(value), length, ellipsis)


def truncate_words(value: object, count: int = 30, ellipsis: str = ELLIPSIS) -> str:
    """The first ``count`` words of ``value`` (HTML or text) as plain text."""
    words = _one_line(value).split(" ")
    if len(words) <= count:
        return " ".join(words)
    return " ".join(words[: max(count, 0)]).rstrip(" ,;:–—-") + ellipsis


# ---------------------------------------------------------------------------- numbers


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            return None
    return None


def money(amount: object, currency: object = None) -> str:
    """``amount`` in ``currency`` (ISO 4217) for the render's locale, by Babel.
    Without a currency the bare number is formatted; non-numbers pass through."""
    if _missing(amount):
        return ""
    number = _decimal(amount)
    if number is None:
        return str(amount)
    locale = settings().locale
    if _missing(currency):
        return babel.numbers.format_decimal(number, format="#,##0.00", locale=locale)
    text = babel.numbers.format_currency(number, str(currency).upper(), locale=locale)
    if locale.character_order == "right-to-left":
        # a left-to-right mark after the currency: a code ending in a symbol keeps its
        # order in a right-to-left line ("‏19.00 US$" read "$US 19.00"), and the text
        # after the price does not join it
        text += _LRM
    return text


def percent(value: object) -> str:
    """A fraction as a percentage for the render's locale: ``0.23`` -> ``23%`` / ``23 %``."""
    number = _decimal(value)
    if number is None:
        return "" if _missing(value) else str(value)
    return babel.numbers.format_percent(number, locale=settings().locale)


# ---------------------------------------------------------------------------- dates


def _as_datetime(value: object) -> dt.datetime | dt.date | None:
    if isinstance(value, dt.datetime | dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _local(value: dt.datetime) -> dt.datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    return aware.astimezone(settings().timezone)


def date(value: object, format: str = "medium") -> str:
    """The calendar date of ``value`` in the render's time zone and locale. ``format`` is
    ``short`` | ``medium`` | ``long`` | ``full`` or a CLDR pattern (``d MMMM``)."""
    when = _as_datetime(value)
    if when is None:
        return "" if _missing(value) else str(value)
    day = _local(when).date() if isinstance(when, dt.datetime) else when
    return _isolated(babel.dates.format_date(day, format=format, locale=settings().locale))


def datetime(value: object, format: str = "medium") -> str:
    """Date and time of ``value`` in the render's time zone and locale."""
    when = _as_datetime(value)
    if when is None:
        return "" if _missing(value) else str(value)
    if not isinstance(when, dt.datetime):
        return date(when, format)
    current = settings()
    return _isolated(
        babel.dates.format_datetime(
            _local(when), format=format, tzinfo=current.timezone, locale=current.locale
        )
    )


_FSI, _PDI = "\u2068", "\u2069"  # Unicode first-strong isolate ... pop directional isolate


def _isolated(text: str) -> str:
    """A date of a right-to-left locale, isolated from the text around it (Unicode FSI /
    PDI): ``11‏/09‏/2015`` reads in its own order after a Latin name too (it read
    ``112015/09/``). Left-to-right locales are left as they are."""
    if settings().locale.character_order == "right-to-left":
        return f"{_FSI}{text}{_PDI}"
    return text


# ---------------------------------------------------------------------------- labels

_AVAILABILITY = {
    "in_stock": N_("In stock"),
    "out_of_stock": N_("Out of stock"),
    "preorder": N_("Pre-order"),
    "backorder": N_("Backorder"),
    "limited_availability": N_("Limited availability"),
    "discontinued": N_("Discontinued"),
}


def availability(value: object) -> str:
    """An Availability value as a label in the render's language (:mod:`layouts.i18n`);
    a value it does not know, as it is (``pre_sale`` -> ``Pre sale``)."""
    if _missing(value):
        return ""
    key = str(value).strip().lower().replace(" ", "_").replace("-", "_")
    label = _AVAILABILITY.get(key)
    return gettext(label) if label is not None else str(value).replace("_", " ").capitalize()


# ---------------------------------------------------------------------------- chat markup


def mrkdwn(value: object) -> str:
    """Plain text escaped for Slack mrkdwn: ``&``, ``<`` and ``>`` (all Slack requires)."""
    if _missing(value):
        return ""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link(text: object, url: object = None) -> str:
    """``<url|text>``; the escaped text alone when there is no URL."""
    label = mrkdwn(text)
    if _missing(url):
        return label
    target = str(url).replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{target}|{label}>" if label else f"<{target}>"


_MD_INLINE = re.compile(r"([\\*_~`|\[\]<])")
_MD_LINE_START = re.compile(r"^(\s*)(#{1,3}|-#|>{1,3}|[-*+])(?=\s)", re.MULTILINE)
_MD_NUMBERED = re.compile(r"^(\s*\d+)\.(?=\s)", re.MULTILINE)


def _md_inline(text: str) -> str:
    return _MD_INLINE.sub(r"\\\1", text)


def md(value: object) -> str:
    """Plain text escaped for Discord markdown: emphasis, code, spoiler and link
    characters anywhere; heading, quote and list markers at the start of a line."""
    if _missing(value):
        return ""
    text = _md_inline(str(value))
    text = _MD_LINE_START.sub(lambda m: m.group(1) + "".join("\\" + c for c in m.group(2)), text)
    return _MD_NUMBERED.sub(r"\1\\.", text)


def md_link(text: object, url: object = None) -> str:
    """``[text](<url>)`` (the angle brackets stop Discord's link preview); text alone
    when there is no URL."""
    if _missing(url):
        return md(text)
    label = "" if _missing(text) else _md_inline(" ".join(str(text).split()))
    target = str(url).replace(">", "%3E").replace(" ", "%20")
    return f"[{label or target}](<{target}>)"


# ---------------------------------------------------------------------------- json

_DATA_FIELDS = (
    "key",
    "title",
    "url",
    "image",
    "author",
    "published",
    "updated",
    "tags",
    "media",
    "price",
    "sale_price",
    "current_price",
    "old_price",
    "currency",
    "availability",
    "brand",
    "sku",
    "gtin",
    "event",
)


def item_data(view: object) -> dict[str, Any]:
    """An item view as a JSON-ready dict for webhooks: the fields that are set, with
    ``summary`` as plain text (prices stay Decimals: the JSON encoder writes strings)."""
    if not isinstance(view, dict):
        return {}
    data = {name: view.get(name) for name in _DATA_FIELDS}
    data["summary"] = plain(view.get("summary")) or None
    return {name: value for name, value in data.items() if value not in (None, "", [])}


FILTERS: dict[str, Callable[..., Any]] = {
    "availability": availability,
    "date": date,
    "datetime": datetime,
    "email_html": email_html,
    "excerpt": excerpt,
    "item_data": item_data,
    "md": md,
    "md_link": md_link,
    "money": money,
    "mrkdwn": mrkdwn,
    "percent": percent,
    "plain": plain,
    "slack_link": slack_link,
    "telegram": telegram,
    "truncate_words": truncate_words,
}
