"""Layouts: items -> channel-ready Messages, then Messages -> provider calls.

* :mod:`layouts.render`: layouts (folders of Jinja2 templates, built-in ones in
  ``layouts/builtin/``) render items into :class:`~feedcast.kernel.models.Message` objects;
* :mod:`layouts.modules`: the module functions templates call (``text()``, ``image()``,
  ``cards()``, ``button()``...) to make a Message's modules;
* :mod:`layouts.filters`: the template filters (sanitising, excerpts, money, dates);
* :mod:`layouts.limits`: the time and size limits every render runs under;
* :mod:`layouts.i18n`: the gettext catalogues of the layouts' own words
  (``layouts/locale/``), chosen by the render's locale;
* :mod:`layouts.html` / :mod:`layouts.text`: sanitisers, validators, truncation;
* :mod:`layouts.formats`: one module per provider format (telegram, messenger, email,
  slack, discord, json) with its limits, its payload builder (a Message as the exact
  provider calls), its validator and its preview; one registry (``FORMATS``,
  ``get_format``, ``provider_calls``, ``validate_call``);
* :mod:`layouts.preview_html`: the safe HTML pieces the formats' previews are made of.

Plain Python: no Prefect, no DuckDB, no network. The renderer's types and ``FORMATS``
are re-exported here lazily, so importing one submodule does not import the others; the
function ``render`` is not (its name is the submodule's): ``from layouts.render import
render``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from layouts.formats import FORMATS
    from layouts.render import (
        EventInfo,
        Layout,
        RenderContext,
        available_layouts,
        builtin_layouts,
        load_layout,
    )

__all__ = [
    "FORMATS",
    "EventInfo",
    "Layout",
    "RenderContext",
    "available_layouts",
    "builtin_layouts",
    "load_layout",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("layouts.formats" if name == "FORMATS" else "layouts.render"), name)
    raise AttributeError(f"module 'layouts' has no attribute {name!r}")
