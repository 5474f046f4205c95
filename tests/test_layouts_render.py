"""The renderer and the built-in layouts.

* every built-in layout x every format renders the first 12 items of every corpus feed
  and catalogue into valid modules, and the payload builder turns them into provider
  calls that pass the channel validators;
* layout loading and validation errors name the file and the line;
* templates run sandboxed;
* dates and prices follow the render's time zone and locale;
* golden files (tests/data/golden/render/) for a few (layout, format) pairs rendered
  from fixed items; ``UPDATE_GOLDEN=1 pytest tests/test_layouts_render.py`` rewrites them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedcast.kernel.errors import InvalidValue, LayoutError, UserError
from feedcast.kernel.models import MODULE_KINDS, Item, Media, Message
from layouts import filters
from layouts.formats import FORMATS, provider_calls, validate_call
from layouts.formats.email import parts as email_parts
from layouts.html import validate_telegram_html
from layouts.render import (
    EventInfo,
    RenderContext,
    available_layouts,
    builtin_layouts,
    item_view,
    load_layout,
    render,
    search_path_from_env,
)
from sources.detect import parse_document
from tests.conftest import CORPUS, CorpusFile, load_manifest

GOLDEN = Path(__file__).parent / "data" / "golden" / "render"
BUILTINS = ("carousel", "digest", "plain", "product", "single")
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CONTEXT = RenderContext(site_title="Example Store", automation="weekly", now=NOW, max_items=12)


# ------------------------------------------------------------------------------ helpers


def write_layout(root: Path, name: str = "mine", per: str = "item", **templates: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "layout.yaml").write_text(
        f"name: {name}\ndescription: test layout\nper: {per}\n", encoding="utf-8"
    )
    for filename, source in templates.items():
        (folder / filename.replace("__", ".")).write_text(source, encoding="utf-8")
    return folder


@pytest.fixture
def render_telegram(tmp_path: Path) -> Any:
    """Render a template source as the telegram.j2 (or messenger.j2, json.j2) of a
    throwaway per-item layout."""
    counter = iter(range(1000))

    def run(template: str, item: Item | None = None, fmt: str = "telegram", **context: Any) -> list[Message]:
        name = f"t{next(counter)}"
        filename = {"telegram": "telegram.j2", "messenger": "messenger.j2", "json": "json.j2"}[fmt]
        folder = write_layout(tmp_path, name, **{filename: template})
        layout = load_layout(str(folder))
        return render(layout, fmt, [item or POST], context=RenderContext(now=NOW, **context))

    return run


def texts(message: Message) -> list[str]:
    """Every piece of markup in a message: module texts (captions included)."""
    return [m.text for m in message.modules if m.text]


def serialise(messages: list[Message]) -> str:
    data = [
        {
            "format": m.format,
            "subject": m.subject,
            "item_keys": list(m.item_keys),
            "modules": [
                {key: value for key, value in asdict(module).items() if value not in (None, [], ())}
                for module in m.modules
            ],
        }
        for m in messages
    ]
    return json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"


def spaces(text: str) -> str:
    """Babel separates with narrow / no-break spaces and, for some locales, a typographic
    or ASCII apostrophe that changes between CLDR releases: compare them as plain ones."""
    return text.replace("\u202f", " ").replace("\xa0", " ").replace("\u2019", "'")


POST = Item(
    key="post-1",
    title="Kånken & friends: 50 years of the <square> backpack",
    url="https://blog.example/posts/kanken?utm=feed&x=1",
    summary=(
        '<p>In 1978 a <b>school bag</b> changed Swedish back health. <a href="/history">Read the history</a>'
        " of a design that outlived its critics.</p><script>alert('x')</script>"
    ),
    image="https://blog.example/img/kanken.jpg",
    media=(Media(url="https://blog.example/img/kanken.jpg", medium="image", type="image/jpeg", width=1200),),
    author="Ada Lindqvist",
    published=datetime(2026, 11, 25, 23, 30, tzinfo=UTC),
    tags=("design", "history"),
)
POST_NO_IMAGE = Item(
    key="post-2",
    title="Why we repair instead of replace",
    url="https://blog.example/posts/repair",
    summary="<p>Zippers, straps and seams: a field guide to making gear last a decade.</p>",
    published=datetime(2026, 11, 24, 8, 15, tzinfo=UTC),
)
PODCAST = Item(
    key="ep-7",
    title="Episode 7: Mountains",
    url="https://pod.example/7",
    summary="We climb.",
    media=(Media(url="https://pod.example/7.mp3", medium="audio", type="audio/mpeg", length=1_000_000),),
)
PRODUCT = Item(
    key="sku-1299",
    title="Kånken Laptop 15″ Backpack",
    url="https://shop.example/p/kanken-laptop?ref=feed",
    summary="<p>Durable Vinylon F, a padded laptop pocket and the classic fox logo.</p>",
    image="https://shop.example/img/kanken-laptop.jpg",
    price=Decimal("1299.00"),
    currency="EUR",
    availability="in_stock",
    brand="Fjällräven",
    sku="F23524",
)
SALE = Item(
    key="sku-80",
    title="Trekking socks",
    url="https://shop.example/p/socks",
    price=Decimal("20.00"),
    sale_price=Decimal("15.00"),
    currency="USD",
    availability="out_of_stock",
)
DROP = {"sku-1299": EventInfo("price_drop", old_price=Decimal("1299.00"), new_price=Decimal("999.00"))}


# ------------------------------------------------------------------------------ corpus

ENTRIES = [e for e in load_manifest(CORPUS) if e.kind in {"feeds", "catalogues"}]


@cache
def corpus_items(entry: CorpusFile) -> tuple[Item, ...]:
    result = parse_document(entry.path.read_bytes(), f"https://example.com/{entry.name}")
    return result.items[:12]


def check_message(layout: str, fmt: str, message: Message, keys: set[str]) -> None:
    where = f"{layout}/{fmt}"
    assert message.format == fmt
    assert message.modules, where
    assert set(message.item_keys) <= keys, where
    for module in message.modules:
        assert module.kind in MODULE_KINDS, where
        for button in module.buttons:
            assert button.title and button.url.startswith(("http://", "https://")), where
        for card in module.cards:
            assert card.title.strip(), where
    if fmt == "telegram":
        for text in texts(message):
            validate_telegram_html(text)
    elif fmt == "email":
        html, plain = email_parts(message)
        assert html.startswith("<!DOCTYPE html>"), where
        assert not re.search(r"<script|javascript:|\son\w+\s*=", html, re.IGNORECASE), where
        assert plain.strip(), where
        assert message.subject, where
    elif fmt == "json":
        for module in message.modules:
            assert module.kind == "text" and isinstance(json.loads(module.text or ""), dict), where
    if layout == "plain":
        assert {m.kind for m in message.modules} == {"text"}, where
        assert not any(m.buttons for m in message.modules), where
    if layout == "carousel" and fmt not in {"email", "json"}:
        assert [m.kind for m in message.modules] == ["cards"], where
        assert len(message.modules[0].cards) <= 10, where
    for call in provider_calls(message):
        validate_call(fmt, call)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_every_builtin_layout_and_format_renders_the_corpus(entry: CorpusFile) -> None:
    items = corpus_items(entry)
    assert items, entry.name
    keys = {item.key for item in items}
    for name in BUILTINS:
        layout = load_layout(name)
        for fmt in FORMATS:
            messages = render(layout, fmt, items, context=CONTEXT)
            if layout.per == "campaign":
                assert len(messages) == 1, f"{name}/{fmt}"
            else:
                assert 1 <= len(messages) <= len(items), f"{name}/{fmt}"
            for message in messages:
                check_message(name, fmt, message, keys)


def test_the_corpus_is_there() -> None:
    kinds = {e.kind for e in ENTRIES}
    assert kinds == {"feeds", "catalogues"}
    assert len(ENTRIES) >= 40


# ------------------------------------------------------------------------------ loading


def test_builtin_layouts_are_found_and_complete() -> None:
    assert builtin_layouts() == list(BUILTINS)
    for name in BUILTINS:
        layout = load_layout(name)
        assert layout.builtin and layout.name == name and layout.description
        assert layout.formats == FORMATS
        assert "email.txt.j2" in layout.templates
        assert layout is load_layout(name)  # built-ins are compiled once
    assert load_layout("single").per == "item" and load_layout("product").per == "item"
    assert {load_layout(n).per for n in ("digest", "carousel", "plain")} == {"campaign"}


def test_package_reexports() -> None:
    import layouts

    assert layouts.load_layout is load_layout and layouts.RenderContext is RenderContext
    assert layouts.FORMATS == FORMATS
    with pytest.raises(AttributeError):
        _ = layouts.nothing_here


def test_unknown_layout_lists_the_available_ones(tmp_path: Path) -> None:
    write_layout(tmp_path, "house", telegram__j2="x")
    with pytest.raises(LayoutError) as err:
        load_layout("nope", [tmp_path])
    assert (
        str(err.value) == "unknown layout 'nope'; available: carousel, digest, house, plain, product, single"
    )
    assert isinstance(err.value, UserError)
    with pytest.raises(LayoutError, match="invalid layout name"):
        load_layout("bad name!")
    with pytest.raises(LayoutError, match="no layout folder at"):
        load_layout(str(tmp_path / "missing"))


def test_user_layouts_by_name_or_path_and_shadowing(tmp_path: Path) -> None:
    folder = write_layout(tmp_path, "single", telegram__j2="{{ text('mine: ' ~ item.title) }}")
    assert available_layouts([tmp_path]) == list(BUILTINS)
    layout = load_layout("single", [tmp_path])  # the search path comes before built-ins
    assert not layout.builtin and layout.location == str(folder)
    assert (
        render(layout, "telegram", [POST_NO_IMAGE])[0].modules[0].text
        == "mine: Why we repair instead of replace"
    )
    assert load_layout(str(folder)).location == str(folder)
    assert load_layout("single").builtin  # without the search path
    env = {"FEEDCAST_LAYOUTS": f"{tmp_path}{os.pathsep}{os.pathsep}~/layouts"}
    assert search_path_from_env(env) == [tmp_path, Path("~/layouts").expanduser()]
    assert search_path_from_env({}) == []


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    folder = write_layout(
        tmp_path,
        telegram__j2="{% call text() %}\n<b>{{ item.title }}</b>\n{{ item.summary }\n{% endcall %}\n",
    )
    with pytest.raises(LayoutError) as err:
        load_layout(str(folder))
    message = str(err.value)
    assert message.startswith(f"{folder}/telegram.j2:3: "), message
    assert "unexpected '}'" in message


def test_syntax_error_in_a_partial_and_unknown_filter(tmp_path: Path) -> None:
    folder = write_layout(tmp_path, "a", telegram__j2='{% include "part.j2" %}', part__j2="ok\n{% if %}")
    with pytest.raises(LayoutError, match=r"/a/part\.j2:2: "):
        load_layout(str(folder))
    folder = write_layout(tmp_path, "b", email__html__j2="<p>\n{{ item.title|shout }}</p>")
    with pytest.raises(LayoutError, match=r"/b/email\.html\.j2:2: No filter named 'shout'"):
        load_layout(str(folder))


def test_missing_include_is_reported_at_load(tmp_path: Path) -> None:
    folder = write_layout(tmp_path, telegram__j2='one\n{% include "header.j2" %}')
    with pytest.raises(LayoutError, match=r"telegram\.j2:2: template 'header\.j2' not found"):
        load_layout(str(folder))


def test_missing_format_template(tmp_path: Path) -> None:
    layout = load_layout(str(write_layout(tmp_path, "only", telegram__j2="{{ item.title }}")))
    assert layout.formats == ("telegram",)
    with pytest.raises(LayoutError) as err:
        render(layout, "email", [POST])
    assert str(err.value) == "layout 'only' has no template for email (email.html.j2)"
    with pytest.raises(LayoutError, match=r"has no template for slack \(slack\.j2\)"):
        layout.require("slack")
    with pytest.raises(LayoutError, match="unknown format 'sms'"):
        layout.require("sms")


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("per: weekly\n", "'per' must be item or campaign, not 'weekly'"),
        ("description: x\n", "'per' is missing"),
        ("per: item\nmax_items: 0\n", "'max_items' must be a whole number from 1 to 100, not 0"),
        ("per: item\nmax_items: yes\n", "'max_items' must be a whole number"),
        ("per: item\nname: [a]\n", "'name' must be a short name"),
        ("per: item\ndescription: 3\n", "'description' must be text"),
        ("per: item\ncolour: red\n", "unknown field 'colour'"),
        ("- per\n", "expected a mapping"),
        ("per: item\n  bad: [indent\n", "layout.yaml:2: "),
    ],
)
def test_bad_layout_yaml_names_the_field(tmp_path: Path, yaml_text: str, expected: str) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "layout.yaml").write_text(yaml_text, encoding="utf-8")
    (folder / "telegram.j2").write_text("x", encoding="utf-8")
    with pytest.raises(LayoutError) as err:
        load_layout(str(folder))
    assert str(err.value).startswith(f"{folder}/layout.yaml")
    assert expected in str(err.value)


def test_folder_without_layout_yaml_or_templates(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="not a layout folder"):
        load_layout(str(tmp_path / "empty"))
    folder = write_layout(tmp_path, "bare")
    with pytest.raises(LayoutError, match=r"no template; a layout has at least one of telegram\.j2"):
        load_layout(str(folder))


def test_campaign_layouts_render_once_and_respect_max_items(tmp_path: Path) -> None:
    folder = write_layout(
        tmp_path, "list", per="campaign", telegram__j2="{% for i in items %}{{ text(i.title) }}{% endfor %}"
    )
    layout = load_layout(str(folder))
    items = [Item(key=str(n), title=f"T{n}") for n in range(15)]
    (message,) = render(layout, "telegram", items)
    assert len(message.modules) == layout.max_items == 10
    assert message.item_keys == tuple(str(n) for n in range(10))
    (message,) = render(layout, "telegram", items, context=RenderContext(max_items=3))
    assert message.item_keys == ("0", "1", "2")
    assert render(layout, "telegram", []) == []
    per_item = render(load_layout("single"), "telegram", items, context=RenderContext(max_items=4))
    assert [m.item_keys for m in per_item] == [("0",), ("1",), ("2",), ("3",)]


# ------------------------------------------------------------------------------ template convention


def test_module_functions_build_the_message(render_telegram: Any) -> None:
    template = """
{% set subject = "Hello " ~ item.title %}
{% call image(item.image, buttons=[button("Read more", item.url), button("Nope", "javascript:alert(1)")]) %}
  <b>{{ item.title }}</b>
{{ item.summary|telegram }}
{% endcall %}
{{ text("plain & simple") }}
{{ video("ftp://x/y.mp4", "no usable url") }}
{{ cards([card("A", "first", "https://i.example/a.png", "https://a.example"), {"title": "B", "url": "https://b.example"}]) }}
"""
    (message,) = render_telegram(template, POST)
    assert message.subject == "Hello Kånken & friends: 50 years of the <square> backpack"
    assert [m.kind for m in message.modules] == ["image", "text", "text", "cards"]
    image, text, degraded, cards = message.modules
    assert image.url == "https://blog.example/img/kanken.jpg"
    assert [b.title for b in image.buttons] == ["Read more"]  # the javascript: button is dropped
    assert image.text is not None and image.text.startswith(
        "<b>Kånken &amp; friends: 50 years of the &lt;square&gt; backpack</b>\n"
    )
    # relative links are resolved against the item
    assert '<a href="https://blog.example/history">Read the history</a>' in image.text
    assert "alert" not in image.text
    assert text.text == "plain &amp; simple"  # a plain string argument is escaped like {{ }}
    assert degraded.text == "no usable url"
    assert [c.title for c in cards.cards] == ["A", "B"]
    assert cards.cards[0].image == "https://i.example/a.png"
    for piece in texts(message):
        validate_telegram_html(piece)


def test_cards_call_block_and_subject_function(render_telegram: Any) -> None:
    template = """{{ subject("Picks") }}
{% call cards(body="<b>Top</b>"|safe) %}
{% for i in range(3) %}
  {{ card("Card " ~ i, url="https://x.example/" ~ i, buttons=[button("Go", "https://x.example/go")]) }}
{% endfor %}
{% endcall %}"""
    (message,) = render_telegram(template)
    assert message.subject == "Picks"
    (module,) = message.modules
    assert module.kind == "cards" and module.text == "<b>Top</b>"
    assert [c.title for c in module.cards] == ["Card 0", "Card 1", "Card 2"]
    assert module.cards[2].buttons[0].url == "https://x.example/go"


def test_template_without_module_calls_is_one_text_module(render_telegram: Any) -> None:
    (message,) = render_telegram("\n  <b>{{ item.title }}</b>   \n\n\n\n{{ item.url }}\n")
    (module,) = message.modules
    assert module.kind == "text"
    assert module.text == (
        "<b>Kånken &amp; friends: 50 years of the &lt;square&gt; backpack</b>\n\n"
        "https://blog.example/posts/kanken?utm=feed&amp;x=1"
    )
    assert render_telegram("{# nothing #}\n   \n") == []  # nothing rendered: no message


def test_text_outside_modules_and_nested_modules_are_errors(render_telegram: Any) -> None:
    with pytest.raises(LayoutError, match=r"telegram\.j2: text outside a module call: 'stray'"):
        render_telegram("{{ text('a') }}\nstray\n")
    with pytest.raises(LayoutError, match=r"telegram\.j2:2: image\(\) inside another module call"):
        render_telegram("{% call text() %}\n{{ image(item.image) }}\n{% endcall %}")
    with pytest.raises(LayoutError, match=r"telegram\.j2:1: buttons must be a list"):
        render_telegram("{{ text('x', buttons='https://a.example') }}")


def test_undefined_names_render_empty_but_calls_fail_with_a_line(render_telegram: Any) -> None:
    (message,) = render_telegram("[{{ item.nope }}{{ item.nope.deeper }}{{ nothing }}]{{ item.title }}")
    assert message.modules[0].text is not None and message.modules[0].text.startswith("[]Kånken")
    with pytest.raises(LayoutError, match=r"telegram\.j2:3: .*ZeroDivisionError"):
        render_telegram("a\nb\n{{ 1 / 0 }}")
    with pytest.raises(LayoutError, match=r"telegram\.j2:2: .*undefined"):
        render_telegram("x\n{{ nothing() }}")


def test_json_format_must_produce_json(render_telegram: Any) -> None:
    (message,) = render_telegram('{{ payload({"title": item.title, "price": 1.5}) }}', fmt="json")
    assert json.loads(message.modules[0].text or "") == {"title": POST.title, "price": 1.5}
    (message,) = render_telegram('{"title": {{ item.title|tojson }}}', fmt="json")
    assert json.loads(message.modules[0].text or "")["title"] == POST.title
    with pytest.raises(LayoutError, match=r"json\.j2: the output is not JSON"):
        render_telegram("title: {{ item.title }}", fmt="json")
    with pytest.raises(LayoutError, match="JSON object or array"):
        render_telegram("42", fmt="json")


# ------------------------------------------------------------------------------ sandbox


@pytest.mark.parametrize(
    "expression",
    [
        "item.__class__.__mro__",
        "''.__class__.__mro__[1].__subclasses__()",
        "item.title.__class__",
        "text.__globals__",
        "cards.__self__.modules",
        "items.append(1)",
        "item.update({'title': 'x'})",
        "'x' * 10000000",
        "2 ** 100000",
        "range(10000000)|list",
    ],
)
def test_templates_are_sandboxed(render_telegram: Any, expression: str) -> None:
    with pytest.raises(LayoutError) as err:
        render_telegram(f"line one\n{{{{ {expression} }}}}\n")
    assert re.search(r"telegram\.j2:2: ", str(err.value)), str(err.value)


def test_sandbox_keeps_the_layout_folder_closed(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("s3cret", encoding="utf-8")
    folder = write_layout(tmp_path, telegram__j2='{% include "../secret.txt" %}')
    with pytest.raises(LayoutError, match="not found"):
        load_layout(str(folder))


# ------------------------------------------------------------------------------ item view, time zone, locale


def test_dates_follow_the_context_time_zone_and_locale(render_telegram: Any) -> None:
    template = (
        "{{ item.published|date }} | {{ item.published|datetime('short') }} | {{ item.published.hour }}"
    )
    (paris,) = render_telegram(template, timezone="Europe/Paris", locale="fr")
    (new_york,) = render_telegram(template, timezone="America/New_York", locale="en")
    # 2026-11-25 23:30 UTC is already the 26th in Paris, still the 25th in New York
    assert spaces(paris.modules[0].text or "") == "26 nov. 2026 | 26/11/2026 00:30 | 0"
    assert spaces(new_york.modules[0].text or "") == "Nov 25, 2026 | 11/25/26, 6:30 PM | 18"
    noon = Item(key="n", title="x", published=datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    (fr,) = render_telegram(
        "{{ item.published|date('medium') }}", noon, locale="fr_FR", timezone="Europe/Paris"
    )
    assert fr.modules[0].text == "25 nov. 2026"


def test_builtin_layouts_show_dates_in_the_context_time_zone() -> None:
    single = load_layout("single")
    (paris,) = render(single, "slack", [POST], context=RenderContext(timezone="Europe/Paris", locale="fr"))
    (new_york,) = render(single, "slack", [POST], context=RenderContext(timezone="America/New_York"))
    assert "26 nov. 2026" in spaces(paris.modules[0].text or "")
    assert "Nov 25, 2026" in (new_york.modules[0].text or "")


def test_prices_follow_the_locale() -> None:
    product = load_layout("product")
    (fr,) = render(product, "telegram", [PRODUCT], context=RenderContext(locale="fr"))
    (en,) = render(product, "telegram", [PRODUCT], context=RenderContext(locale="en"))
    assert "<b>1 299,00 €</b>" in spaces(fr.modules[0].text or "")
    assert "<b>€1,299.00</b>" in (en.modules[0].text or "")
    with filters.using(filters.parse_locale("de_CH"), filters.parse_timezone("UTC")):
        assert spaces(filters.money(Decimal("1299"), "CHF")) == "CHF 1'299.00"
        assert filters.money(None, "CHF") == "" and filters.money("n/a", "CHF") == "n/a"
    assert filters.money(Decimal("5"), None) == "5.00"


def test_price_drop_and_sale_are_struck_through() -> None:
    product = load_layout("product")
    (tg,) = render(product, "telegram", [PRODUCT], context=RenderContext(), events=DROP)
    caption = tg.modules[0].text or ""
    assert "Price drop" in caption
    assert "<s>€1,299.00</s> <b>€999.00</b> (−23%)" in caption
    assert tg.modules[0].buttons[0].title == "Buy"
    (slack,) = render(product, "slack", [PRODUCT], events=DROP)
    assert "~€1,299.00~ *€999.00*" in (slack.modules[0].text or "")
    (discord,) = render(product, "discord", [PRODUCT], events=DROP)
    assert "~~€1,299.00~~ **€999.00**" in (discord.modules[0].text or "")
    (email,) = render(product, "email", [PRODUCT], events=DROP)
    html, plain = email_parts(email)
    assert email.subject == "Price drop: Kånken Laptop 15″ Backpack now €999.00"
    assert re.search(r"<s [^>]*>€1,299.00</s>", html) and "€999.00" in html
    assert "Price: €999.00 (was €1,299.00)" in plain
    (sale,) = render(product, "telegram", [SALE])
    assert "<s>$20.00</s> <b>$15.00</b> (−25%)" in (sale.modules[0].text or "")
    assert "Out of stock" in (sale.modules[0].text or "")
    (plain_price,) = render(product, "telegram", [PRODUCT])
    assert "<s>" not in (plain_price.modules[0].text or "")


def test_item_view() -> None:
    hook_calls: list[str] = []

    def track(url: str, item: Item) -> str:
        hook_calls.append(item.key)
        return f"https://t.example/c?u={quote(url, safe='')}"

    view = item_view(PRODUCT, RenderContext(timezone="Asia/Tokyo", link=track), DROP["sku-1299"])
    assert view["url"].startswith("https://t.example/c?u=https%3A%2F%2Fshop.example")
    assert view["raw_url"] == PRODUCT.url and hook_calls == ["sku-1299"]
    assert (view["current_price"], view["old_price"]) == (Decimal("999.00"), Decimal("1299.00"))
    assert view["discount"] == (Decimal("300") / Decimal("1299"))
    assert view["event"] == "price_drop" and view["in_stock"] is True and view["domain"] == "shop.example"
    assert item_view(PODCAST)["audio"]["url"] == "https://pod.example/7.mp3"
    assert (
        item_view(POST, RenderContext(timezone="Asia/Tokyo"))["published"].utcoffset().total_seconds()
        == 9 * 3600
    )
    hostile = Item(
        key="h", title="  spaced \n title ", url="javascript:alert(1)", image="data:image/png;base64,xx"
    )
    view = item_view(hostile)
    assert view["title"] == "spaced title" and view["url"] is None and view["image"] is None


def test_link_hook_rewrites_item_links_not_media() -> None:
    context = RenderContext(link=lambda url, item: f"https://t.example/{item.key}")
    (message,) = render(load_layout("single"), "telegram", [POST], context=context)
    (module,) = message.modules
    assert module.url == POST.image
    assert module.buttons[0].url == "https://t.example/post-1"
    (digest,) = render(load_layout("digest"), "telegram", [POST], context=context)
    assert '<a href="https://t.example/post-1">' in (digest.modules[1].text or "")


def test_render_context_is_validated() -> None:
    with pytest.raises(InvalidValue, match="unknown time zone 'Mars/Olympus'"):
        RenderContext(timezone="Mars/Olympus")
    with pytest.raises(InvalidValue, match="unknown locale 'xx_YY'"):
        RenderContext(locale="xx_YY")
    with pytest.raises(InvalidValue, match="max_items"):
        RenderContext(max_items=0)
    assert RenderContext(locale="pt-BR").locale == "pt-BR"


# ------------------------------------------------------------------------------ built-in layouts


def test_single_picks_the_media_and_falls_back_to_text() -> None:
    single = load_layout("single")
    (with_image, without, podcast) = render(single, "telegram", [POST, POST_NO_IMAGE, PODCAST])
    assert [m.kind for m in with_image.modules] == ["image"]
    assert [m.kind for m in without.modules] == ["text"] and without.modules[0].buttons
    assert [m.kind for m in podcast.modules] == ["audio"]
    assert podcast.modules[0].url == "https://pod.example/7.mp3"
    (card,) = render(single, "messenger", [POST])[0].modules
    assert card.kind == "cards" and len(card.cards[0].subtitle or "") <= 80
    assert render(single, "messenger", [POST_NO_IMAGE])[0].modules[0].kind == "text"


def test_digest_has_one_text_module_per_item() -> None:
    items = [POST, POST_NO_IMAGE, PODCAST]
    for fmt in ("telegram", "messenger", "slack", "discord"):
        (message,) = render(load_layout("digest"), fmt, items, context=CONTEXT)
        assert [m.kind for m in message.modules] == ["text"] * 4, fmt  # header + 3 items
        assert message.item_keys == ("post-1", "post-2", "ep-7")


def test_emails_are_whole_responsive_documents() -> None:
    for name in BUILTINS:
        item = PRODUCT if name in {"product", "carousel"} else POST
        message = render(
            load_layout(name),
            "email",
            [item, POST_NO_IMAGE],
            context=RenderContext(site_title="Example", now=NOW, unsubscribe_url="https://x.example/u/tok"),
        )[0]
        html, plain = email_parts(message)
        assert "max-width:600px" in html and 'name="viewport"' in html and "@media" in html, name
        assert 'role="presentation"' in html and "<script" not in html, name
        assert 'href="https://x.example/u/tok"' in html, name
        assert "Unsubscribe: https://x.example/u/tok" in plain, name
        assert "display:none" in html, name  # the preheader
        if name != "plain":
            assert 'src="https://' in html, name
        else:
            assert "<img" not in html
        assert "<" not in plain.replace("<square>", ""), name


def test_email_subject_from_set_or_default(tmp_path: Path) -> None:
    folder = write_layout(tmp_path, email__html__j2="<html><body><p>{{ subject }}</p></body></html>")
    (message,) = render(load_layout(str(folder)), "email", [POST_NO_IMAGE])
    assert message.subject == "Why we repair instead of replace"  # the default: the item title
    html, plain = email_parts(message)
    assert "<p>Why we repair instead of replace</p>" in html
    assert plain == "Why we repair instead of replace"  # derived from the HTML without email.txt.j2
    folder = write_layout(
        tmp_path, "s", email__html__j2="{% set subject = 'Custom: ' ~ item.title %}<p>{{ subject }}</p>"
    )
    (message,) = render(load_layout(str(folder)), "email", [POST_NO_IMAGE])
    assert message.subject == "Custom: Why we repair instead of replace"


# ------------------------------------------------------------------------------ filters


def test_excerpt_and_truncate_words() -> None:
    text = "<p>The quick brown fox <b>jumps</b> over the lazy dog.</p>"
    assert filters.excerpt(text, 100) == "The quick brown fox jumps over the lazy dog."
    assert filters.excerpt(text, 22) == "The quick brown fox…"
    assert filters.excerpt("日本語のテキストです" * 3, 7) == "日本語のテキ…"
    assert filters.truncate_words(text, 3) == "The quick brown…"
    assert filters.excerpt(None) == "" and filters.truncate_words("", 3) == ""


def test_chat_markup_escaping() -> None:
    assert filters.mrkdwn("a <b> & c") == "a &lt;b&gt; &amp; c"
    assert (
        filters.slack_link("Tom & Jerry", "https://x.example/?a=1|2")
        == "<https://x.example/?a=1%7C2|Tom &amp; Jerry>"
    )
    assert filters.md("# not a *heading* _x_") == "\\# not a \\*heading\\* \\_x\\_"
    assert (
        filters.md_link("[1] Title", "https://x.example/a b") == "[\\[1\\] Title](<https://x.example/a%20b>)"
    )
    assert filters.availability("out_of_stock") == "Out of stock"
    assert filters.availability("limited availability") == "Limited availability"


# ------------------------------------------------------------------------------ golden files

GOLDEN_CASES = [
    ("single", "telegram", [POST], None),
    ("single", "messenger", [POST, POST_NO_IMAGE], None),
    ("digest", "slack", [POST, POST_NO_IMAGE, PODCAST], None),
    ("digest", "telegram", [POST, POST_NO_IMAGE, PODCAST], None),
    ("carousel", "discord", [PRODUCT, SALE, POST], None),
    ("product", "telegram", [PRODUCT, SALE], DROP),
    ("product", "email", [PRODUCT], DROP),
    ("plain", "json", [POST, POST_NO_IMAGE], None),
]


@pytest.mark.parametrize(
    ("layout", "fmt", "items", "events"), GOLDEN_CASES, ids=[f"{c[0]}-{c[1]}" for c in GOLDEN_CASES]
)
def test_golden(layout: str, fmt: str, items: list[Item], events: dict[str, EventInfo] | None) -> None:
    context = RenderContext(site_title="Example Store", automation="weekly", now=NOW, timezone="Europe/Paris")
    actual = serialise(render(load_layout(layout), fmt, items, context=context, events=events))
    path = GOLDEN / f"{layout}_{fmt}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        if os.environ.get("UPDATE_GOLDEN") != "1":
            pytest.fail(f"{path} did not exist: written, check it in")
    assert actual == path.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ properties

_TEXT = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(
            ["<", ">", "&", '"', "'", "*", "_", "~", "`", "|", "#", "\n", "👍🏽", "👨‍👩‍👧", "é", "ع", "漢"]
        ),
    ),
    max_size=400,
).map("".join)
_HTML = st.lists(
    st.one_of(
        _TEXT,
        st.sampled_from(
            ["<p>", "</p>", "<b>", "</i>", "<a href='/x'>", "</a>", "<br>", "<script>x</script>", "&amp;"]
        ),
    ),
    max_size=20,
).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=_TEXT,
    summary=st.one_of(st.none(), _HTML),
    price=st.one_of(st.none(), st.decimals(min_value=0, max_value=10**9, places=2)),
    old=st.one_of(st.none(), st.decimals(min_value=0, max_value=10**9, places=2)),
    image=st.booleans(),
)
def test_arbitrary_items_render_valid_calls(
    title: str, summary: str | None, price: Decimal | None, old: Decimal | None, image: bool
) -> None:
    item = Item(
        key="k",
        title=title,
        url="https://x.example/p?a=1&b=2",
        summary=summary,
        image="https://x.example/i.jpg" if image else None,
        price=price,
        currency="EUR" if price is not None else None,
        availability="in_stock",
    )
    events = {"k": EventInfo("price_drop", old_price=old, new_price=price)} if old is not None else None
    for name in BUILTINS:
        layout = load_layout(name)
        for fmt in FORMATS:
            for message in render(layout, fmt, [item, POST], context=CONTEXT, events=events):
                check_message(name, fmt, message, {"k", POST.key})
