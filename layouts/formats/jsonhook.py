"""The ``json`` format: the generic webhook, one ``POST`` of a ``feedcast.v1`` document.

Every module a layout renders is a text module holding one JSON document
(:func:`check_modules`); the call's body is :func:`json_document` (documented there).
The preview shows the body pretty-printed (:func:`json_to_html`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

from feedcast.kernel.models import MODULE_KINDS, Button, Message, Module, ProviderCall
from layouts.formats import _check as check
from layouts.formats._build import JsonObj, Sizes
from layouts.formats._spec import Format
from layouts.markup import to_html
from layouts.preview_html import Sender, esc, plain_window

__all__ = ["DOCUMENT_FORMAT", "FORMAT", "json_document", "json_to_html"]

DOCUMENT_FORMAT = "feedcast.v1"  # the version of json_document


def check_modules(modules: Sequence[Module]) -> str | None:
    """What is wrong with rendered modules that are not all JSON documents, or None."""
    for module in modules:
        if module.kind != "text" or module.text is None:
            return f"the json format takes JSON text modules only, not {module.kind}"
        try:
            document = json.loads(module.text)
        except ValueError as exc:
            return f"the output is not JSON ({exc})"
        if not isinstance(document, dict | list):
            return "the output must be a JSON object or array"
    return None


def _test_message(text: str, channel: str) -> Message:
    """The message ``feedcast channel test`` sends: ``text`` as the subject of a small document."""
    del channel
    return Message(format="json", subject=text, modules=(Module(kind="text", text='{"test": true}'),))


# --------------------------------------------------------------------------- building


def json_document(message: Message) -> JsonObj:
    """The generic-webhook document of ``message`` (format ``feedcast.v1``).

    ::

        {"format": "feedcast.v1",
         "subject": str | null,
         "items": [item key, ...],
         "modules": [{"kind": "text" | "image" | "video" | "audio" | "file" | "cards",
                      "text": str | null,       # as the layout rendered it
                      "data": any | null,       # "text" parsed, when it is a JSON document
                      "url": str | null,        # media URL
                      "buttons": [{"title": str, "url": str}          # a link
                                  | {"title": str, "reply": str}, ...],  # a reply
                      "cards": [{"title": str, "subtitle": str | null, "image": str | null,
                                 "url": str | null, "buttons": [...]}, ...]}, ...]}

    Every key is always present (null or empty when unused); new keys may be added in a
    later ``feedcast.v1`` document, none renamed or removed.
    """
    return {
        "format": DOCUMENT_FORMAT,
        "subject": message.subject,
        "items": list(message.item_keys),
        "modules": [_module(module) for module in message.modules],
    }


def _data(text: str | None) -> Any:
    stripped = (text or "").strip()
    if not stripped or stripped[0] not in "[{":
        return None
    try:
        return json.loads(stripped, parse_constant=_no_constant)
    except ValueError:
        return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _buttons(buttons: Iterable[Button]) -> list[JsonObj]:
    return [
        {"title": b.title, "reply": b.reply} if b.reply is not None else {"title": b.title, "url": b.url}
        for b in buttons
    ]


def _module(module: Module) -> JsonObj:
    return {
        "kind": module.kind,
        "text": module.text,
        "data": _data(module.text),
        "url": module.url,
        "buttons": _buttons(module.buttons),
        "cards": [
            {
                "title": card.title,
                "subtitle": card.subtitle,
                "image": card.image,
                "url": card.url,
                "buttons": _buttons(card.buttons),
            }
            for card in module.cards
        ],
    }


def build_calls(message: Message, sizes: Sizes) -> list[ProviderCall]:
    """One ``POST`` of :func:`json_document`, or none for an empty message."""
    del sizes
    if not message.modules:
        return []
    return [ProviderCall("POST", json_document(message))]


# --------------------------------------------------------------------------- validation

_MODULE_KEYS = frozenset({"kind", "text", "data", "url", "buttons", "cards"})
_CARD_KEYS = frozenset({"title", "subtitle", "image", "url", "buttons"})


def validate(call: ProviderCall) -> None:
    """Raise PayloadError unless ``call`` is a ``feedcast.v1`` webhook call."""
    body = check.webhook_body(call, "json", {"format", "subject", "items", "modules"})
    if body.get("format") != DOCUMENT_FORMAT:
        check.fail("json.format", f"format must be {DOCUMENT_FORMAT!r}, not {body.get('format')!r}")
    if body.get("subject") is not None:
        check.string(body["subject"], "json.subject", "subject")
    for index, key in enumerate(
        check.array(check.field(body, "items", "json.items", "body"), "json.items", "items")
    ):
        check.string(key, "json.items", f"items[{index}]")
    modules = check.array(check.field(body, "modules", "json.modules", "body"), "json.modules", "modules")
    for index, raw in enumerate(modules):
        what = f"modules[{index}]"
        module = check.obj(raw, "json.module", what)
        if set(module) != _MODULE_KEYS:
            check.fail(
                "json.module", f"{what} must have exactly the fields {', '.join(sorted(_MODULE_KEYS))}"
            )
        if module["kind"] not in MODULE_KINDS:
            check.fail(
                "json.module", f"{what}.kind {module['kind']!r} is not one of {', '.join(MODULE_KINDS)}"
            )
        for key in ("text", "url"):
            if module[key] is not None:
                check.string(module[key], "json.module", f"{what}.{key}")
        _check_buttons(module["buttons"], f"{what}.buttons")
        for c, raw_card in enumerate(check.array(module["cards"], "json.module", f"{what}.cards")):
            card = check.obj(raw_card, "json.card", f"{what}.cards[{c}]")
            if set(card) != _CARD_KEYS:
                check.fail(
                    "json.card",
                    f"{what}.cards[{c}] must have exactly the fields {', '.join(sorted(_CARD_KEYS))}",
                )
            check.string(card["title"], "json.card", f"{what}.cards[{c}].title")
            for key in ("subtitle", "image", "url"):
                if card[key] is not None:
                    check.string(card[key], "json.card", f"{what}.cards[{c}].{key}")
            _check_buttons(card["buttons"], f"{what}.cards[{c}].buttons")
    try:
        json.dumps(body, allow_nan=False)
    except (TypeError, ValueError) as err:
        check.fail("json.serialisable", f"the body is not plain JSON: {err}")


def _check_buttons(value: Any, what: str) -> None:
    for index, raw in enumerate(check.array(value, "json.button", what)):
        button = check.obj(raw, "json.button", f"{what}[{index}]")
        if set(button) not in ({"title", "url"}, {"title", "reply"}):
            check.fail(
                "json.button", f"{what}[{index}] must have exactly the fields title, url (or title, reply)"
            )
        check.string(button["title"], "json.button", f"{what}[{index}].title")
        target = "url" if "url" in button else "reply"
        check.string(button[target], "json.button", f"{what}[{index}].{target}")


# --------------------------------------------------------------------------- preview

_TOKEN = re.compile(r'("(?:\\.|[^"\\])*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b')


def json_to_html(document: object) -> str:
    """``document`` as indented JSON, escaped, with keys, strings and literals marked."""

    def token(m: re.Match[str]) -> str:
        string, colon, number, literal = m.groups()
        if string is not None:
            klass = "k" if colon else "s"
            return f'<span class="j{klass}">{esc(string)}</span>{colon or ""}'
        return f'<span class="jn">{esc(number or literal)}</span>'

    pretty = json.dumps(document, ensure_ascii=False, indent=2)
    out, pos = [], 0
    for m in _TOKEN.finditer(pretty):
        out.append(esc(pretty[pos : m.start()]))
        out.append(token(m))
        pos = m.end()
    out.append(esc(pretty[pos:]))
    return "".join(out)


def preview_call(call: ProviderCall, sender: Sender, number: int) -> str:
    """One call as its body, pretty-printed."""
    del sender
    return (
        f'<article class="json-call"><header><span class="method">{esc(call.method)}</span> '
        f'<span class="muted">webhook body · message {number}</span></header>'
        f"<pre><code>{json_to_html(call.body)}</code></pre></article>"
    )


FORMAT: Final = Format(
    name="json",
    label="JSON webhook",
    template="json.j2",
    check_modules=check_modules,  # every module a JSON document
    build_calls=build_calls,
    validate=validate,
    own_test_message=_test_message,
    preview_call=preview_call,
    preview_window=plain_window,  # the bodies on the page itself
    markup=to_html,
)
