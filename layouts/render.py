"""The renderer: layouts (folders of Jinja2 templates) turn items into Messages.

A layout is a folder::

    my-layout/
        layout.yaml      name, description, per (item | campaign), max_items
        telegram.j2      Telegram's HTML subset          autoescaped
        messenger.j2     plain text                      -
        email.html.j2    a whole HTML email document     autoescaped
        email.txt.j2     its plain-text alternative      - (optional: derived from the HTML)
        slack.j2         Slack mrkdwn                    -
        discord.j2       Discord markdown                -
        json.j2          a JSON document                 -
        *.j2             partials for include / import / extends (``telegram*`` and
                         ``*.html.j2`` are autoescaped)

``per: item`` renders one Message per item (``single``, ``product``); ``per: campaign``
one Message for up to ``max_items`` items (``digest``, ``carousel``, ``plain``). Built-in
layouts live in ``layouts/builtin/<name>/``; their shared partials in
``layouts/builtin/_shared/`` are available to every layout as ``feedcast/<file>``
(``{% extends "feedcast/email.html.j2" %}``).

Template convention (chat formats: telegram, messenger, slack, discord, json): a
template emits the Message's modules by calling the module functions of
:mod:`layouts.modules` (``text()``, ``image()``, ``cards()``, ``button()``,
``subject()``, ``payload()``...), in order; their table and rules are there.

The ``json`` format: every module is a text module whose text is one JSON document (the
body of one webhook request), made with ``payload({...})`` or ``{{ value|tojson }}``;
the renderer checks that it parses (each format's ``check_modules``, see
:mod:`layouts.formats`). ``slack`` and ``discord`` use the module
vocabulary like Telegram (mrkdwn / markdown text, images, buttons, cards): the payload
builder turns modules into blocks / embeds and splits long messages between modules.

The ``email`` format: ``email.html.j2`` renders a whole HTML document, ``email.txt.j2``
its plain-text part; the Message then holds exactly two text modules, the HTML first
and the plain text second (:func:`layouts.formats.email.parts`). Email templates make
no module calls; ``subject`` is a variable holding the default subject, which
``{% set subject = ... %}`` (top level of either template) replaces.

Template variables: ``item`` (per-item layouts), ``items`` (always; item views, see
:func:`item_view`), ``layout``, ``channel_format``, ``automation``, ``site_title``,
``now`` (in the render's time zone), ``locale``, ``direction`` (``rtl`` or ``ltr``: the
locale's, or the items' script when they are mostly right-to-left), ``timezone``,
``unsubscribe_url``.
Filters: see :mod:`layouts.filters`. Translation (Jinja's i18n extension, newstyle, see
:mod:`layouts.i18n`): ``_("...")`` / ``gettext``, ``ngettext(singular, plural, n)``,
``pgettext``, ``npgettext`` and ``{% trans %}`` blocks, in the render's locale, formatted
with their keyword arguments (escaped when autoescaping; ``%%`` is a percent sign) under
the render's limits.

Loading: :func:`load_layout` takes a built-in name, a name found in the search path
(user folders first, so they may replace a built-in; :func:`search_path_from_env` reads
``FEEDCAST_LAYOUTS``) or a folder path. Built-ins are read with importlib.resources and
compiled once per process.

Templates are untrusted: they run in Jinja's immutable sandbox (no ``_`` attributes, no
mutation of values, bounded ``range`` and repetition) under the time and size limits of
:mod:`layouts.limits` (``RenderContext.limits``, by default from
``FEEDCAST_LAYOUT_TIME_LIMIT`` / ``FEEDCAST_LAYOUT_MAX_OUTPUT``). Undefined names and attributes
render empty (``item.missing.deeper`` included); unsafe attribute access, runtime errors
and syntax errors become :class:`LayoutError` naming the file and the line.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import yaml
from jinja2 import (
    BaseLoader,
    ChainableUndefined,
    Environment,
    TemplateError,
    TemplateNotFound,
    Undefined,
    meta,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.utils import pass_context
from markupsafe import Markup

from feedcast.kernel.errors import InvalidValue, LayoutError, LimitExceeded, TemplateMisuse
from feedcast.kernel.models import Item, Message, Module
from feedcast.kernel.urls import safe_url
from layouts import filters, i18n
from layouts.formats import FORMATS, get_format
from layouts.html import plain_text
from layouts.limits import MeteredSandbox, RenderLimits, current, metering
from layouts.modules import BUTTON_SCHEMES, ModuleBuilder, json_dumps, plain_label, tidy
from layouts.text import text_direction

__all__ = [
    "TEMPLATE_FILES",
    "EventInfo",
    "Layout",
    "RenderContext",
    "available_layouts",
    "builtin_layouts",
    "identity_link",
    "item_view",
    "load_layout",
    "render",
    "render_composed_email",
    "search_path_from_env",
]

log = logging.getLogger(__name__)

TEMPLATE_FILES: Final[Mapping[str, str]] = {name: get_format(name).template for name in FORMATS}
LAYOUT_FILE: Final = "layout.yaml"
SHARED_PREFIX: Final = "feedcast/"  # templates of layouts/builtin/_shared, for every layout

MAX_ITEMS_LIMIT: Final = 100
DEFAULT_MAX_ITEMS: Final = 10
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MAX_REPEAT = 100_000  # characters / elements a template may build with `*`

Per = Literal["item", "campaign"]
LinkHook = Callable[[str, Item], str]


def identity_link(url: str, item: Item) -> str:
    """The default link hook: URLs are used as they are (no click tracking)."""
    return url


@dataclass(frozen=True, slots=True)
class EventInfo:
    """Why an item is in a campaign, when it is not simply new (e.g. a price drop)."""

    event: str  # an EventKind value: new | changed | price_drop | back_in_stock
    old_price: Decimal | None = None
    new_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class RenderContext:
    """Per-automation settings of a render. ``link(url, item)`` rewrites item URLs
    (click tracking); ``now`` is fixed in tests, the current time otherwise."""

    timezone: str = "UTC"  # IANA zone name
    locale: str = "en"  # fr, fr_FR or fr-FR
    automation: str | None = None
    site_title: str | None = None
    max_items: int | None = None  # None: the layout's default
    link: LinkHook = identity_link
    now: datetime | None = None
    unsubscribe_url: str | None = None
    limits: RenderLimits | None = None  # None: FEEDCAST_LAYOUT_TIME_LIMIT / _MAX_OUTPUT or defaults

    def __post_init__(self) -> None:
        filters.parse_timezone(self.timezone)  # InvalidValue when unknown
        filters.parse_locale(self.locale)
        if self.max_items is not None and not 1 <= self.max_items <= MAX_ITEMS_LIMIT:
            raise InvalidValue(f"max_items must be between 1 and {MAX_ITEMS_LIMIT}, not {self.max_items}")


_DEFAULT_CONTEXT: Final = RenderContext()


# ------------------------------------------------------------------------------- layouts


@dataclass(frozen=True, eq=False)
class Layout:
    """A loaded, validated layout: every template in it compiled."""

    name: str
    description: str
    per: Per
    max_items: int
    location: str  # the folder, as shown in messages (layouts/builtin/single, ./mine...)
    builtin: bool
    templates: tuple[str, ...]  # the layout's own template files
    environment: Environment = field(repr=False)
    filenames: frozenset[str] = field(repr=False, default=frozenset())  # for error lines

    @property
    def formats(self) -> tuple[str, ...]:
        """The formats this layout has a template for."""
        return tuple(fmt for fmt in FORMATS if self.has(fmt))

    def has(self, fmt: str) -> bool:
        return TEMPLATE_FILES.get(fmt) in self.templates

    def require(self, fmt: str) -> None:
        """LayoutError unless the layout can render ``fmt``."""
        if fmt not in TEMPLATE_FILES:
            raise LayoutError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
        if not self.has(fmt):
            raise LayoutError(f"layout {self.name!r} has no template for {fmt} ({TEMPLATE_FILES[fmt]})")

    def path(self, template: str) -> str:
        """A template's file as shown in messages."""
        if template.startswith(SHARED_PREFIX):
            return f"{_BUILTIN_LOCATION}/_shared/{template.removeprefix(SHARED_PREFIX)}"
        return f"{self.location}/{template}"


_BUILTIN_LOCATION: Final = "layouts/builtin"
_builtin_cache: dict[str, Layout] = {}
_shared_cache: dict[str, tuple[str, str]] = {}
_cache_lock = threading.RLock()


def _builtin_root() -> Traversable:
    return resources.files("layouts") / "builtin"


def builtin_layouts() -> list[str]:
    """Names of the layouts shipped with feedcast."""
    root = _builtin_root()
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and not entry.name.startswith(("_", ".")) and (entry / LAYOUT_FILE).is_file()
    )


def available_layouts(search_path: Sequence[Path] = ()) -> list[str]:
    """Names :func:`load_layout` accepts: user layouts of ``search_path`` and built-ins."""
    names = set(builtin_layouts())
    for root in search_path:
        folder = Path(root)
        if folder.is_dir():
            names.update(
                entry.name for entry in folder.iterdir() if entry.is_dir() and (entry / LAYOUT_FILE).is_file()
            )
    return sorted(names)


def search_path_from_env(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The user layout folders named by ``FEEDCAST_LAYOUTS`` (``os.pathsep``-separated)."""
    value = (os.environ if environ is None else environ).get("FEEDCAST_LAYOUTS", "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def _looks_like_path(name: str) -> bool:
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return any(sep in name for sep in separators) or name.startswith((".", "~"))


def load_layout(name_or_path: str, search_path: Sequence[Path] = ()) -> Layout:
    """The layout named ``name_or_path``, validated: every template compiles, every
    include exists, layout.yaml is well formed.

    A name is looked up in the folders of ``search_path`` first (so a user layout may
    replace a built-in one; the caller adds ``FEEDCAST_LAYOUTS``), then among the
    built-ins. A path (anything with a ``/``, or starting with ``.`` or ``~``) is
    loaded as a layout folder directly.
    """
    if _looks_like_path(name_or_path):
        folder = Path(name_or_path).expanduser()
        if not folder.is_dir():
            raise LayoutError(f"no layout folder at {name_or_path}")
        return _load(folder, str(folder), builtin=False)
    name = name_or_path
    if not _NAME.fullmatch(name):
        raise LayoutError(f"invalid layout name {name!r}")
    for root in search_path:
        folder = Path(root) / name
        if folder.is_dir():
            return _load(folder, str(folder), builtin=False)
    if name in builtin_layouts():
        with _cache_lock:
            layout = _builtin_cache.get(name)
            if layout is None:
                layout = _builtin_cache[name] = _load(
                    _builtin_root() / name, f"{_BUILTIN_LOCATION}/{name}", builtin=True
                )
        return layout
    raise LayoutError(f"unknown layout {name!r}; available: {', '.join(available_layouts(search_path))}")


def _read(file: Traversable, shown: str) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LayoutError(f"{shown}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise LayoutError(f"{shown}: cannot be read ({exc.strerror or exc})") from exc


def _shared_sources() -> dict[str, tuple[str, str]]:
    with _cache_lock:
        if not _shared_cache:
            root = _builtin_root() / "_shared"
            if root.is_dir():
                for entry in root.iterdir():
                    if entry.is_file() and entry.name.endswith(".j2"):
                        shown = f"{_BUILTIN_LOCATION}/_shared/{entry.name}"
                        _shared_cache[SHARED_PREFIX + entry.name] = (_read(entry, shown), shown)
        return dict(_shared_cache)


def _load(folder: Traversable, location: str, *, builtin: bool) -> Layout:
    meta_file = folder / LAYOUT_FILE
    meta_shown = f"{location}/{LAYOUT_FILE}"
    if not meta_file.is_file():
        raise LayoutError(f"{location}: not a layout folder (no {LAYOUT_FILE})")
    name, description, per, max_items = _parse_meta(_read(meta_file, meta_shown), meta_shown, folder.name)

    own: dict[str, tuple[str, str]] = {}
    for entry in folder.iterdir():
        if entry.is_file() and entry.name.endswith(".j2"):
            shown = f"{location}/{entry.name}"
            own[entry.name] = (_read(entry, shown), shown)
    if not any(TEMPLATE_FILES[fmt] in own for fmt in FORMATS):
        expected = ", ".join(TEMPLATE_FILES[fmt] for fmt in FORMATS)
        raise LayoutError(f"{location}: no template; a layout has at least one of {expected}")
    for fmt in map(get_format, FORMATS):
        if fmt.text_template in own and fmt.template not in own:
            raise LayoutError(f"{location}: {fmt.text_template} without {fmt.template}")

    sources = {**_shared_sources(), **own}
    env = _environment(sources)
    for template in sorted(own):
        _compile(env, template, sources)
    return Layout(
        name=name,
        description=description,
        per=per,
        max_items=max_items,
        location=location,
        builtin=builtin,
        templates=tuple(sorted(own)),
        environment=env,
        filenames=frozenset(shown for _source, shown in sources.values()),
    )


def _parse_meta(text: str, shown: str, folder_name: str) -> tuple[str, str, Per, int]:
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = f":{exc.problem_mark.line + 1}" if exc.problem_mark is not None else ""
        raise LayoutError(f"{shown}{line}: {exc.problem or exc.context or 'invalid YAML'}") from exc
    except yaml.YAMLError as exc:
        raise LayoutError(f"{shown}: invalid YAML ({exc})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LayoutError(f"{shown}: expected a mapping with name, description, per, max_items")
    known = ("name", "description", "per", "max_items")
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise LayoutError(
            f"{shown}: unknown field {', '.join(map(repr, unknown))}; fields: {', '.join(known)}"
        )

    name = data.get("name", folder_name)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise LayoutError(f"{shown}: 'name' must be a short name (letters, digits, - _ .), not {name!r}")
    description = data.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise LayoutError(f"{shown}: 'description' must be text, not {description!r}")
    per = data.get("per")
    if per is None:
        raise LayoutError(f"{shown}: 'per' is missing: item (one message per item) or campaign")
    if per not in ("item", "campaign"):
        raise LayoutError(f"{shown}: 'per' must be item or campaign, not {per!r}")
    max_items = data.get("max_items", DEFAULT_MAX_ITEMS)
    if isinstance(max_items, bool) or not isinstance(max_items, int) or not 1 <= max_items <= MAX_ITEMS_LIMIT:
        raise LayoutError(
            f"{shown}: 'max_items' must be a whole number from 1 to {MAX_ITEMS_LIMIT}, not {max_items!r}"
        )
    return name, " ".join(description.split()), per, max_items


def _compile(env: Environment, template: str, sources: Mapping[str, tuple[str, str]]) -> None:
    source, shown = sources[template]
    try:
        env.get_template(template)
        references = meta.find_referenced_templates(env.parse(source, template, shown))
    except TemplateError as exc:
        raise LayoutError(_located_message(exc, shown)) from exc
    for reference in references:
        if reference is not None and reference not in sources:
            line = _line_of(source, reference)
            raise LayoutError(f"{shown}{line}: template {reference!r} not found (not in the layout folder)")


def _line_of(source: str, needle: str) -> str:
    for number, line in enumerate(source.splitlines(), 1):
        if needle in line:
            return f":{number}"
    return ""


def _located_message(exc: TemplateError, default_file: str) -> str:
    filename = getattr(exc, "filename", None) or default_file
    lineno = getattr(exc, "lineno", None)
    where = f"{filename}:{lineno}" if lineno else filename
    return f"{where}: {exc.message or type(exc).__name__}"


# ------------------------------------------------------------------------------- sandbox


class _Loader(BaseLoader):
    """Serves the layout's own files and the shared partials, nothing else."""

    def __init__(self, sources: Mapping[str, tuple[str, str]]) -> None:
        self._sources = dict(sources)

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        try:
            source, shown = self._sources[template]
        except KeyError:
            raise TemplateNotFound(template) from None
        return source, shown, lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self._sources)


class _Sandbox(MeteredSandbox):
    """Jinja's immutable sandbox, stricter: unsafe attributes raise at once, ``*`` /
    ``**`` cannot build huge values, and every render runs under the time and size
    limits of :mod:`layouts.limits`."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("exponent too large")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(count, int)
                    and len(seq) * count > _MAX_REPEAT
                ):
                    raise SecurityError("repetition too large")
        return super().call_binop(context, operator, left, right)


def _autoescape(name: str | None) -> bool:
    if name is None:
        return True
    base = name.rsplit("/", 1)[-1]
    return base.endswith(".html.j2") or base.startswith("telegram")


# --- gettext for templates (Jinja's i18n extension, newstyle): the translations of the
# render in progress (layouts.i18n.using), formatted with the call's keyword arguments
# through the sandbox's own `%` (so a template's format widths are held to the limits)


def _message(value: object) -> str:
    return value if isinstance(value, str) else ("" if isinstance(value, Undefined) else str(value))


def _count(value: object) -> int:
    return value if isinstance(value, int) else int(value)  # type: ignore[call-overload]


def _formatted(context: Context, text: str, variables: dict[str, Any]) -> str:
    """A translation formatted as Jinja's newstyle gettext does: always (``%%`` is a
    percent sign), its arguments escaped when the template autoescapes."""
    template = Markup(text) if context.eval_ctx.autoescape else text  # noqa: S704 - our catalogues
    sandbox = cast(MeteredSandbox, context.environment)
    formatted: str = sandbox.call_binop(context, "%", template, variables)  # Markup stays Markup
    return formatted


@pass_context
def _gettext(context: Context, message: object, /, **variables: Any) -> str:
    return _formatted(context, i18n.gettext(_message(message)), variables)


@pass_context
def _ngettext(context: Context, singular: object, plural: object, n: object, /, **variables: Any) -> str:
    count = _count(n)
    variables.setdefault("num", count)
    return _formatted(context, i18n.ngettext(_message(singular), _message(plural), count), variables)


@pass_context
def _pgettext(context: Context, where: object, message: object, /, **variables: Any) -> str:
    return _formatted(context, i18n.pgettext(_message(where), _message(message)), variables)


@pass_context
def _npgettext(
    context: Context, where: object, singular: object, plural: object, n: object, /, **variables: Any
) -> str:
    count = _count(n)
    variables.setdefault("num", count)
    text = i18n.npgettext(_message(where), _message(singular), _message(plural), count)
    return _formatted(context, text, variables)


def _environment(sources: Mapping[str, tuple[str, str]]) -> Environment:
    env = _Sandbox(
        loader=_Loader(sources),
        autoescape=_autoescape,
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        cache_size=-1,
        extensions=["jinja2.ext.i18n"],
    )
    with_i18n: Any = env  # the extension's attributes are not in Environment's type
    with_i18n.newstyle_gettext = True  # {% trans %} blocks call these with their variables
    env.globals.update(gettext=_gettext, ngettext=_ngettext, pgettext=_pgettext, npgettext=_npgettext)
    env.filters.update(filters.FILTERS)
    env.meter_filters()
    env.policies["json.dumps_function"] = json_dumps
    env.policies["json.dumps_kwargs"] = {}
    return env


# ------------------------------------------------------------------------------- item view


def _local(when: datetime | None, tz: ZoneInfo) -> datetime | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(tz)


def _media_kind(medium: str, mime: str | None) -> str:
    """image | video | audio | file: the MIME type decides when there is one (a YouTube
    player ``application/x-shockwave-flash`` is no video a channel can send)."""
    if mime:
        major = mime.split("/", 1)[0].strip().lower()
        return major if major in {"image", "video", "audio"} else "file"
    return medium if medium in {"image", "video", "audio"} else "file"


def item_view(
    item: Item, context: RenderContext | None = None, event: EventInfo | None = None
) -> dict[str, Any]:
    """What templates see as ``item``: a dict (attribute access works in templates).

    ``url`` went through the context's link hook (``raw_url`` did not); URLs that are
    not absolute http(s) are dropped; ``summary`` / ``content`` / ``body`` are
    :class:`~layouts.filters.HtmlText` remembering the item URL; ``published`` and
    ``updated`` are in the context's time zone. Products: ``current_price`` (what a buyer
    pays now), ``old_price`` (the struck-through one: the price before a price drop, or
    the regular price during a sale), ``discount`` (a fraction), ``in_stock``.
    ``event`` is the EventKind value, or None.
    """
    context = context or _DEFAULT_CONTEXT
    tz = filters.parse_timezone(context.timezone)
    raw_url = safe_url(item.url)
    url = context.link(raw_url, item) if raw_url else None
    media = []
    for entry in item.media:
        media_url = safe_url(entry.url)
        if media_url:
            media.append(
                {
                    "url": media_url,
                    "kind": _media_kind(entry.medium, entry.type),
                    "type": entry.type,
                    "length": entry.length,
                    "width": entry.width,
                    "height": entry.height,
                    "title": entry.title,
                }
            )
    image = safe_url(item.image) or next((m["url"] for m in media if m["kind"] == "image"), None)
    image_width = next((m["width"] for m in media if m["url"] == image and m["width"]), None)

    current = item.effective_price
    old: Decimal | None = None
    if event is not None and event.new_price is not None:
        current = event.new_price
    if (
        event is not None
        and event.event == "price_drop"
        and event.old_price is not None
        and current is not None
        and event.old_price > current
    ):
        old = event.old_price
    elif item.price is not None and current is not None and current < item.price:
        old = item.price
    discount = (old - current) / old if old is not None and current is not None and old > 0 else None

    summary = filters.HtmlText(item.summary, raw_url) if item.summary else None
    content = filters.HtmlText(item.content, raw_url) if item.content else None
    host = urlsplit(raw_url).hostname if raw_url else None
    availability = item.availability
    return {
        "key": item.key,
        "title": " ".join(item.title.split()) if item.title else "",
        "url": url,
        "raw_url": raw_url,
        "domain": host.removeprefix("www.") if host else None,
        "summary": summary,
        "content": content,
        "body": content or summary,
        "image": image,
        "image_width": image_width,  # pixels, when the source says
        "media": media,
        "video": next((m for m in media if m["kind"] == "video"), None),
        "audio": next((m for m in media if m["kind"] == "audio"), None),
        "author": item.author,
        "published": _local(item.published, tz),
        "updated": _local(item.updated, tz),
        "tags": list(item.tags),
        "price": item.price,
        "sale_price": item.sale_price,
        "current_price": current,
        "old_price": old,
        "discount": discount,
        "currency": item.currency,
        "availability": availability,
        "in_stock": None if availability is None else availability in {"in_stock", "preorder", "backorder"},
        "brand": item.brand,
        "sku": item.sku,
        "gtin": item.gtin,
        "mpn": item.mpn,
        "event": event.event if event is not None else None,
    }


# ------------------------------------------------------------------------------- render

_RENDER_ERRORS = (
    LimitExceeded,
    TemplateError,
    TemplateMisuse,
    TypeError,
    ValueError,
    ArithmeticError,
    LookupError,
    AttributeError,
    RecursionError,
)


def _where(exc: BaseException, layout: Layout, template: str) -> str:
    """``file:line`` of the innermost template frame of ``exc``'s traceback."""
    where = layout.path(template)
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in layout.filenames:
            where = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def _describe(exc: BaseException, layout: Layout) -> str:
    if isinstance(exc, LimitExceeded):
        return f"layout {layout.name!r} {exc.reason}"
    if isinstance(exc, TemplateError):
        return exc.message or type(exc).__name__
    if isinstance(exc, TemplateMisuse):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "too deep recursion"
    return f"{type(exc).__name__}: {exc}"


def _run(layout: Layout, template: str, variables: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """Render one template; returns its output and its top-level variables."""
    env = layout.environment
    compiled = env.get_template(template)
    context = compiled.new_context(dict(variables))
    meter = current()
    try:
        try:
            chunks = []
            for chunk in compiled.root_render_func(context):  # stops at the output limit
                if meter is not None:
                    meter.written(chunk)
                chunks.append(chunk)
            output = env.concat(chunks)
            if meter is not None and meter.tripped is not None:  # swallowed on the way
                raise LimitExceeded(meter.tripped)
        except Exception:
            env.handle_exception()  # re-raises, with the template lines in the traceback
    except LayoutError:
        raise
    except _RENDER_ERRORS as exc:
        raise LayoutError(f"{_where(exc, layout, template)}: {_describe(exc, layout)}") from exc
    return str(output), context.vars


def _subject(value: object) -> str | None:
    return (plain_label(value) or None) if isinstance(value, str) else None


_BODY = re.compile(r"<body\b[^>]*>(.*)</body>", re.IGNORECASE | re.DOTALL)


def _render_document(
    layout: Layout, fmt: str, text_template: str, variables: dict[str, Any], default_subject: str | None
) -> tuple[tuple[Module, ...], str | None]:
    """A format rendered as a whole document and its plain-text alternative (email): no
    module calls; ``subject`` a variable either template may set."""
    html, html_vars = _run(layout, TEMPLATE_FILES[fmt], {**variables, "subject": default_subject or ""})
    subject = _subject(html_vars.get("subject")) or default_subject
    if text_template in layout.templates:
        text, text_vars = _run(layout, text_template, {**variables, "subject": subject or ""})
        subject = _subject(text_vars.get("subject")) or subject
        text = tidy(text)
    else:
        body = _BODY.search(html)
        text = tidy(plain_text(body.group(1) if body else html, links=True))
    if not html.strip():
        return (), subject
    return (Module("text", text=html.strip()), Module("text", text=text)), subject


def render(
    layout: Layout,
    fmt: str,
    items: Sequence[Item],
    *,
    context: RenderContext | None = None,
    events: Mapping[str, EventInfo] | None = None,
) -> list[Message]:
    """Render ``items`` (at most ``context.max_items`` or the layout's ``max_items``)
    with ``layout`` for ``fmt``: one Message per item or one per campaign. A render
    that emits nothing yields no Message; no items, no Message."""
    layout.require(fmt)
    context = context or _DEFAULT_CONTEXT
    limit = context.max_items or layout.max_items
    chosen = list(items)[:limit]
    if not chosen:
        return []
    events = events or {}
    locale = filters.parse_locale(context.locale)
    tz = filters.parse_timezone(context.timezone)
    now = _local(context.now or datetime.now(UTC), tz)
    views = [item_view(item, context, events.get(item.key)) for item in chosen]
    common = {
        "layout": layout.name,
        "channel_format": fmt,
        "automation": context.automation,
        "site_title": context.site_title,
        "now": now,
        "locale": str(locale),
        "direction": _direction(locale, chosen),
        "timezone": context.timezone,
        "unsubscribe_url": safe_url(context.unsubscribe_url, BUTTON_SCHEMES),
    }
    groups = [[i] for i in range(len(chosen))] if layout.per == "item" else [list(range(len(chosen)))]
    messages = []
    limits = context.limits or RenderLimits.from_env()
    with filters.using(locale, tz), i18n.using(locale), metering(limits) as meter:
        for group in groups:
            meter.new_message()
            variables: dict[str, Any] = {**common, "items": [views[i] for i in group]}
            if layout.per == "item":
                variables["item"] = views[group[0]]
            group_views = [views[i] for i in group]
            default_subject = _default_subject(layout, context, group_views)
            rendered = _render_one(layout, fmt, variables, default_subject)
            keys = tuple(chosen[i].key for i in group)
            if rendered is None:
                log.debug("layout %s/%s rendered nothing for %s", layout.name, fmt, keys)
                continue
            modules, subject = rendered
            messages.append(Message(format=fmt, modules=modules, subject=subject, item_keys=keys))
    return messages


COMPOSED_EMAIL: Final = ("feedcast/composed.html.j2", "feedcast/composed.txt.j2")


def render_composed_email(
    blocks: Sequence[Mapping[str, Any]], *, subject: str, context: RenderContext
) -> tuple[tuple[Module, ...], str | None]:
    """The email document of a composed message (:mod:`layouts.composed`): the shared
    templates :data:`COMPOSED_EMAIL` with the message's ``blocks``, in the context's
    locale and time zone. Returns the email's modules (HTML, plain text) and subject."""
    layout = load_layout("plain")  # any built-in: the shared templates are every layout's
    locale = filters.parse_locale(context.locale)
    tz = filters.parse_timezone(context.timezone)
    texts = [str(block.get("text") or "") for block in blocks]
    direction = "rtl" if locale.character_order == "right-to-left" else text_direction(*texts)
    variables: dict[str, Any] = {
        "layout": None,
        "channel_format": "email",
        "automation": context.automation,
        "site_title": context.site_title,
        "now": _local(context.now or datetime.now(UTC), tz),
        "locale": str(locale),
        "direction": direction,
        "timezone": context.timezone,
        "unsubscribe_url": safe_url(context.unsubscribe_url, BUTTON_SCHEMES),
        "blocks": list(blocks),
        "preheader_text": next((t for t in texts if t.strip()), "")[:140],
        "subject": subject,
    }
    html_template, text_template = COMPOSED_EMAIL
    with (
        filters.using(locale, tz),
        i18n.using(locale),
        metering(context.limits or RenderLimits.from_env()) as meter,
    ):
        meter.new_message()
        html, _vars = _run(layout, html_template, variables)
        text, _vars = _run(layout, text_template, variables)
    return (Module("text", text=html.strip()), Module("text", text=tidy(text))), subject or None


def _direction(locale: Any, items: Sequence[Item]) -> str:
    """``rtl`` for a right-to-left locale or items written mostly in right-to-left
    scripts (an Arabic feed previewed in ``en``), ``ltr`` otherwise."""
    if locale.character_order == "right-to-left":
        return "rtl"
    return text_direction(*(part for item in items for part in (item.title, item.summary)))


def _render_one(
    layout: Layout, fmt: str, variables: dict[str, Any], default_subject: str | None
) -> tuple[tuple[Module, ...], str | None] | None:
    spec = get_format(fmt)
    template = TEMPLATE_FILES[fmt]
    if spec.text_template is not None:
        modules, subject = _render_document(layout, fmt, spec.text_template, variables, default_subject)
    else:
        builder = ModuleBuilder(escape=_autoescape(template))
        output, top = _run(layout, template, {**variables, **builder.functions()})
        try:
            modules = builder.finish(output)
        except TemplateMisuse as exc:
            raise LayoutError(f"{layout.path(template)}: {exc}") from exc
        subject = builder.subject or _subject(top.get("subject")) or default_subject
        problem = spec.check_modules(modules)
        if problem is not None:
            raise LayoutError(f"{layout.path(template)}: {problem}")
    return (modules, subject) if modules else None


def _default_subject(
    layout: Layout, context: RenderContext, views: Sequence[Mapping[str, Any]]
) -> str | None:
    if layout.per == "item":
        return views[0]["title"] or context.site_title or context.automation
    return context.site_title or context.automation or views[0]["title"] or None
