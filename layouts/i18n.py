"""Labels in the audience's language: the gettext catalogues of feedcast's own words.

The built-in layouts, the module functions, the filters and the previews print words of
their own ("Read more", "Buy", "Price drop", "Unsubscribe", the email footer...). They
are gettext messages of the domain ``feedcast``, translated in the catalogues
``layouts/locale/<lang>/LC_MESSAGES/feedcast.po`` (:data:`LANGUAGES`; the template of
them all is ``layouts/locale/messages.pot``, made by ``scripts/i18n extract``). The
catalogues ship as ``.po`` text only: :func:`translations` reads one with Babel, compiles
it in memory and keeps it, once per process and locale.

A locale falls back language by language: ``fr_CA`` reads ``fr_CA`` when there is such a
catalogue, else ``fr``, else English, else the message itself (``pt_BR`` -> ``pt``,
``zh_TW`` -> English). The translations of the render in progress are the ones
:func:`using` set (the renderer does, from ``RenderContext.locale``); :func:`gettext`,
:func:`ngettext`, :func:`pgettext` and :func:`npgettext` translate with them (English
outside a render). :func:`N_` marks a message for extraction without translating it (a
table of labels translated where it is read).

Templates call ``_("...")`` / ``gettext``, ``ngettext(singular, plural, n)``, ``pgettext``
and ``npgettext``, and may use ``{% trans %}`` blocks (Jinja's i18n extension,
*newstyle*: the translation is formatted with the keyword arguments, ``%(name)s``, and
``ngettext`` adds ``num``; a literal ``%`` is written ``%%``).

Plain Python: Babel and the standard library.
"""

from __future__ import annotations

import functools
import gettext as _gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import resources
from importlib.resources.abc import Traversable
from io import BytesIO
from typing import Final

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

__all__ = [
    "DOMAIN",
    "LANGUAGES",
    "N_",
    "catalogue_file",
    "current",
    "gettext",
    "ngettext",
    "npgettext",
    "pgettext",
    "translations",
    "using",
]

DOMAIN: Final = "feedcast"
# the catalogues shipped (layouts/locale/<lang>/LC_MESSAGES/feedcast.po); a test keeps
# every one of them complete
LANGUAGES: Final = ("en", "it", "fr", "de", "es", "pt", "ru", "ar")
FALLBACK: Final = "en"


def _root() -> Traversable:
    return resources.files("layouts") / "locale"


def catalogue_file(language: str) -> Traversable:
    """The ``.po`` file of ``language`` (it may not exist)."""
    return _root() / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def _compiled(language: str) -> bytes | None:
    """The catalogue of ``language`` compiled to a ``.mo`` in memory (fuzzy entries
    left out, as ``msgfmt`` does), or None when there is none."""
    file = catalogue_file(language)
    if not file.is_file():
        return None
    with file.open("rb") as source:
        catalog = read_po(source, locale=language, domain=DOMAIN)
    out = BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def _candidates(locale: Locale) -> list[str]:
    """The catalogues ``locale`` reads, the most specific first, English last."""
    names = [str(locale)]
    if locale.script and locale.territory:
        names.append(f"{locale.language}_{locale.script}")
    if locale.territory:
        names.append(f"{locale.language}_{locale.territory}")
    names += [locale.language, FALLBACK]
    return list(dict.fromkeys(names))


def _parse(locale: str | Locale) -> Locale:
    if isinstance(locale, Locale):
        return locale
    return Locale.parse(locale.replace("-", "_"))


@functools.lru_cache(maxsize=256)
def _chain(key: str) -> _gettext.NullTranslations:
    head: _gettext.NullTranslations | None = None
    for name in _candidates(_parse(key)):
        compiled = _compiled(name)
        if compiled is None:
            continue
        found = Translations(BytesIO(compiled), domain=DOMAIN)
        if head is None:
            head = found
        else:
            head.add_fallback(found)
    return head if head is not None else _gettext.NullTranslations()


def translations(locale: str | Locale) -> _gettext.NullTranslations:
    """The translations of ``locale`` (``fr``, ``fr_CA``, ``fr-CA`` or a Babel Locale),
    with its fallbacks (see the module docstring); one object per locale and process."""
    return _chain(str(_parse(locale)))


_CURRENT: ContextVar[_gettext.NullTranslations | None] = ContextVar("feedcast_translations", default=None)


def current() -> _gettext.NullTranslations:
    """The translations of the render in progress (English outside one)."""
    return _CURRENT.get() or translations(FALLBACK)


@contextmanager
def using(locale: str | Locale) -> Iterator[_gettext.NullTranslations]:
    """Make ``locale``'s translations the current ones inside the ``with`` block."""
    token = _CURRENT.set(translations(locale))
    try:
        yield current()
    finally:
        _CURRENT.reset(token)


def gettext(message: str) -> str:
    """``message`` in the current language."""
    return current().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of ``singular`` / ``plural`` for the number ``n`` in the current language."""
    return current().ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    """``message`` in the current language, as meant in ``context``."""
    return current().pgettext(context, message)


def npgettext(context: str, singular: str, plural: str, n: int) -> str:
    """:func:`ngettext` with a ``context``."""
    return current().npgettext(context, singular, plural, n)


def N_(message: str) -> str:
    """``message`` itself: marks it for extraction, translated where it is shown."""
    return message
