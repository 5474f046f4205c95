"""Labels in the audience's language (layouts.i18n, layouts/locale/).

* the catalogues: the .pot holds every message of the code and the built-in templates,
  and every shipped catalogue translates every one of them (none empty, none fuzzy, the
  placeholders kept, as many plural forms as its Plural-Forms says); ``scripts/i18n
  check`` runs these;
* loading: Babel compiles them in memory, once per locale; fr_CA falls back to fr, then
  to English;
* every language through the real render path (load_layout / render) and through the
  CLI (``feedcast preview --locale``): the built-in layouts say their words in it;
* templates' gettext is newstyle and sandboxed: escaped arguments, format widths held to
  the render's limits, user layouts translated too;
* right to left: Arabic emails and previews are marked up and laid out right to left,
  an Arabic email checked in headless Chromium (Playwright) with a screenshot.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

import feedcast.cli as cli_module
from feedcast.cli import main
from feedcast.kernel.errors import LayoutError
from feedcast.kernel.models import Button, Card, Item, Message, Module
from feedcast.sandbox import SampleServer, sample_text
from layouts import i18n
from layouts.filters import availability
from layouts.formats import get_format, provider_calls, validate_call
from layouts.formats.email import parts as email_parts
from layouts.preview_html import Sender, img
from layouts.render import EventInfo, RenderContext, load_layout, render
from tests.conftest import on_ci
from tests.test_cli import Cli

ROOT = Path(__file__).resolve().parent.parent
LOCALE_DIR = ROOT / "layouts" / "locale"
POT = LOCALE_DIR / "messages.pot"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
NBSP = "\xa0"

# --------------------------------------------------------------------------- the catalogues

Key = tuple[str | None, str | tuple[str, ...]]  # (context, msgid or (singular, plural))


def _key(context: str | None, message: object) -> Key:
    return (context, tuple(message) if isinstance(message, list | tuple) else str(message))


def _extracted() -> dict[Key, list[str]]:
    """Every message of layouts/ as ``scripts/i18n extract`` finds it (the same mapping
    file, the same directories: _shared included, caches not), with where it is."""
    with (LOCALE_DIR / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)

    def directory_filter(path: str) -> bool:
        name = os.path.basename(path)
        return not name.startswith(".") and name != "__pycache__"

    found: dict[Key, list[str]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
        str(ROOT / "layouts"),
        method_map,
        options_map,
        keywords=DEFAULT_KEYWORDS,
        directory_filter=directory_filter,
    ):
        parts = message if isinstance(message, tuple) else (message,)
        if not parts or not parts[0]:
            continue
        found.setdefault(_key(context, message), []).append(f"layouts/{filename}:{lineno}")
    return found


def _catalog(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as file:
        return read_po(file, locale=locale)


def _messages(catalog: Catalog) -> dict[Key, Any]:
    return {_key(m.context, m.id): m for m in catalog if m.id}


_PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]|%[-#0 +]*\d*(?:\.\d+)?[a-zA-Z%]")
# the plural forms every catalogue must declare (the usual gettext ones)
NPLURALS = {"en": 2, "it": 2, "fr": 2, "de": 2, "es": 2, "pt": 2, "ru": 3, "ar": 6}


def _placeholders(text: str) -> set[str]:
    return {m.group(0) for m in _PLACEHOLDER.finditer(text) if m.group(0) != "%%"}


def test_the_catalogue_template_holds_every_message_of_the_code_and_templates() -> None:
    """A message added to a template or a module, or changed, fails here until
    ``scripts/i18n update`` re-extracts the .pot (and the catalogues follow)."""
    found = _extracted()
    pot = _messages(_catalog(POT))
    missing = {key: where for key, where in found.items() if key not in pot}
    stale = sorted(str(key) for key in pot if key not in found)
    assert not missing, f"not in {POT.name} (run scripts/i18n update): {missing}"
    assert not stale, f"in {POT.name} but no longer in the code (run scripts/i18n update): {stale}"
    assert len(found) >= 40  # the extraction saw the templates and the modules
    assert _key(None, "Unsubscribe") in found and _key(None, "In stock") in found  # _shared/ and .py


def test_the_catalogues_shipped_are_the_languages_named() -> None:
    on_disk = sorted(p.name for p in LOCALE_DIR.iterdir() if (p / "LC_MESSAGES" / "feedcast.po").is_file())
    assert on_disk == sorted(i18n.LANGUAGES)
    assert set(i18n.LANGUAGES) >= {"en", "it", "fr", "de", "es", "pt", "ru", "ar"}


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_catalogue_translates_every_message(language: str) -> None:
    catalog = _catalog(LOCALE_DIR / language / "LC_MESSAGES" / "feedcast.po", language)
    assert str(catalog.locale) == language
    assert catalog.num_plurals == NPLURALS.get(language, catalog.num_plurals)
    header = dict(catalog.mime_headers)
    assert f"nplurals={catalog.num_plurals};" in header["Plural-Forms"].replace(" ", "")
    assert header["Content-Type"] == "text/plain; charset=utf-8"
    messages = _messages(catalog)
    problems: list[str] = []
    for key, template in _messages(_catalog(POT)).items():
        message = messages.get(key)
        if message is None:
            problems.append(f"{key}: missing")
            continue
        if message.fuzzy:
            problems.append(f"{key}: fuzzy")
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        if isinstance(template.id, tuple):
            if len(forms) != catalog.num_plurals:
                problems.append(f"{key}: {len(forms)} plural forms, Plural-Forms says {catalog.num_plurals}")
            wanted = _placeholders(template.id[1])
            for index, form in enumerate(forms):
                if not form.strip():
                    problems.append(f"{key}: plural form {index} untranslated")
                elif not _placeholders(form) <= wanted or not wanted - {"%(num)d"} <= _placeholders(form):
                    problems.append(f"{key}: plural form {index} changes the placeholders: {form!r}")
        else:
            if not forms[0].strip():
                problems.append(f"{key}: untranslated")
            elif _placeholders(forms[0]) != _placeholders(template.id):
                problems.append(f"{key}: the placeholders changed: {forms[0]!r}")
            words = re.findall(r"[A-Za-z]", _PLACEHOLDER.sub("", template.id))
            if language != "en" and forms[0] == template.id and len(words) > 8:
                problems.append(f"{key}: left in English")  # "video", "audio" may be the same word
        for text in forms:
            if re.search(r"[<>&]", text):  # translations land in HTML and Telegram markup as they are
                problems.append(f"{key}: markup characters in {text!r}")
    problems += [f"{key}: not in the .pot" for key in messages if key not in _messages(_catalog(POT))]
    problems += [f"{message.id!r}: {error}" for message, errors in catalog.check() for error in errors]
    assert not problems, f"{language}: " + "; ".join(problems)
    if language == "en":  # English says every message as written
        assert all(
            m.string == (m.id if isinstance(m.id, str) else tuple(m.id[min(i, 1)] for i in range(2)))
            for m in messages.values()
        )


# --------------------------------------------------------------------------- loading


def test_translations_load_once_per_locale_and_fall_back() -> None:
    french = i18n.translations("fr")
    assert french is i18n.translations("fr") and french.gettext("Read more") == "Lire la suite"
    assert i18n.translations("fr_CA").gettext("Read more") == "Lire la suite"  # no fr_CA catalogue
    assert i18n.translations("fr-CA") is i18n.translations("fr_CA")
    assert i18n.translations("pt_BR").gettext("Buy") == "Comprar"
    assert i18n.translations("de_AT").gettext("Buy now") == "Jetzt kaufen"
    assert i18n.translations("zh_Hant_TW").gettext("Read more") == "Read more"  # English
    assert i18n.translations("sr_Latn_RS").gettext("Read more") == "Read more"
    assert i18n.translations("ja").gettext("a message no catalogue has") == "a message no catalogue has"
    assert i18n.translations("en_GB").gettext("Unsubscribe") == "Unsubscribe"


def test_the_current_translations_are_the_renders() -> None:
    assert i18n.gettext("Buy") == "Buy"  # English outside a render
    with i18n.using("ru"):
        assert i18n.gettext("Buy") == "Купить" and availability("in_stock") == "В наличии"
        with i18n.using("ar_EG"):
            assert i18n.gettext("Buy") == "شراء"
        assert i18n.pgettext("nothing", "Buy") == "Buy"  # no such context: the message itself
    assert i18n.gettext("Buy") == "Buy" and availability("in_stock") == "In stock"
    assert availability("pre_sale") == "Pre sale"  # unknown values as they are


@pytest.mark.parametrize(
    ("language", "counts"),
    [
        ("en", {1: "1 new item", 2: "2 new items", 0: "0 new items"}),
        ("fr", {0: "0 nouvel article", 1: "1 nouvel article", 2: "2 nouveaux articles"}),
        ("de", {1: "1 neuer Eintrag", 7: "7 neue Einträge"}),
        (
            "ru",
            {
                1: "1 новая запись", 2: "2 новые записи", 4: "4 новые записи", 5: "5 новых записей",
                11: "11 новых записей", 12: "12 новых записей", 21: "21 новая запись",
                22: "22 новые записи", 100: "100 новых записей", 101: "101 новая запись",
                111: "111 новых записей",
            },
        ),
        (
            "ar",
            {
                0: "لا عناصر جديدة", 1: "عنصر جديد واحد", 2: "عنصران جديدان", 3: "3 عناصر جديدة",
                10: "10 عناصر جديدة", 11: "11 عنصرًا جديدًا", 99: "99 عنصرًا جديدًا",
                100: "100 عنصر جديد", 102: "102 عنصر جديد", 103: "103 عناصر جديدة",
            },
        ),
    ],
)  # fmt: skip
def test_plural_forms_follow_each_languages_rules(language: str, counts: dict[int, str]) -> None:
    translations = i18n.translations(language)
    for n, expected in counts.items():
        assert translations.ngettext("%(num)d new item", "%(num)d new items", n) % {"num": n} == expected


# --------------------------------------------------------------------------- every language, rendered


@dataclass(frozen=True)
class Words:
    buy: str
    buy_now: str
    price_drop: str
    read_more: str
    unsubscribe: str
    in_stock: str
    digest: str
    latest: str
    three_new: str
    footer: str  # the email footer, with a site title
    generic_footer: str  # without one


WORDS = {
    "en": Words("Buy", "Buy now", "Price drop", "Read more", "Unsubscribe", "In stock", "Your digest",
                "Latest", "3 new items", "You receive this email because you subscribed to Northwind.",
                "You receive this email because you subscribed to these updates."),
    "it": Words("Acquista", "Acquista ora", "Prezzo ribassato", "Leggi tutto", "Annulla l’iscrizione",
                "Disponibile", "Il tuo riepilogo", "Novità", "3 nuovi articoli",
                "Ricevi questa email perché ti sei iscritto a Northwind.",
                "Ricevi questa email perché ti sei iscritto a questi aggiornamenti."),
    "fr": Words("Acheter", "Acheter maintenant", "Baisse de prix", "Lire la suite", "Se désabonner",
                "En stock", "Votre résumé", "Nouveautés", "3 nouveaux articles",
                "Vous recevez cet e-mail car vous êtes abonné à Northwind.",
                "Vous recevez cet e-mail car vous êtes abonné à ces actualités."),
    "de": Words("Kaufen", "Jetzt kaufen", "Preissenkung", "Weiterlesen", "Abbestellen", "Auf Lager",
                "Ihre Zusammenfassung", "Das Neueste", "3 neue Einträge",
                "Sie erhalten diese E-Mail, weil Sie Northwind abonniert haben.",
                "Sie erhalten diese E-Mail, weil Sie diese Neuigkeiten abonniert haben."),
    "es": Words("Comprar", "Comprar ahora", "Bajada de precio", "Leer más", "Cancelar suscripción",
                "En stock", "Tu resumen", "Lo último", "3 novedades",
                "Recibes este correo porque te suscribiste a Northwind.",
                "Recibes este correo porque te suscribiste a estas novedades."),
    "pt": Words("Comprar", "Comprar agora", "Preço reduzido", "Ler mais", "Cancelar inscrição",
                "Disponível", "O seu resumo", "Novidades", "3 novidades",
                "Recebe este e-mail porque se inscreveu em Northwind.",
                "Recebe este e-mail porque se inscreveu para receber estas novidades."),
    "ru": Words("Купить", "Купить сейчас", "Цена снижена", "Читать далее", "Отписаться", "В наличии",
                "Ваш дайджест", "Новое", "3 новые записи",
                "Вы получаете это письмо, потому что подписались на Northwind.",
                "Вы получаете это письмо, потому что подписались на эти обновления."),
    "ar": Words("شراء", "اشترِ الآن", "انخفاض السعر", "اقرأ المزيد", "إلغاء الاشتراك", "متوفر",
                "ملخصك", "الأحدث", "3 عناصر جديدة", "تصلك هذه الرسالة لأنك اشتركت في Northwind.",
                "تصلك هذه الرسالة لأنك اشتركت في هذه التحديثات."),
}  # fmt: skip
ENGLISH_ONLY = ("Buy", "Read more", "Unsubscribe", "Price drop", "In stock", "You receive", "new items")

JACKET = Item(
    key="nw-1001",
    title="Ridge Shell Jacket",
    url="https://shop.example/p/ridge-shell",
    summary="<p>A light shell for wet ridges.</p>",
    image="https://shop.example/img/ridge.jpg",
    price=Decimal("199.00"),
    currency="EUR",
    availability="in_stock",
    brand="Northwind",
)
DROP = {JACKET.key: EventInfo("price_drop", old_price=Decimal("249.00"), new_price=Decimal("199.00"))}
POSTS = [
    Item(
        key=f"post-{n}",
        title=f"Trail notes {n}",
        url=f"https://blog.example/posts/{n}",
        summary=f"<p>Notes from the trail, part {n}.</p>",
        published=datetime(2026, 11, 20 + n, 8, 0, tzinfo=UTC),
    )
    for n in (1, 2, 3)
]
UNSUBSCRIBE = "https://shop.example/unsubscribe/abc"


def _context(language: str, **fields: Any) -> RenderContext:
    return RenderContext(locale=language, now=NOW, unsubscribe_url=UNSUBSCRIBE, **fields)


def _plain(text: str) -> str:
    return text.replace(NBSP, " ").replace("\u202f", " ")


def _chat_texts(messages: list[Message]) -> str:
    """Every text, button label and card field of a chat format's messages."""
    out = []
    for message in messages:
        for module in message.modules:
            out.append(module.text or "")
            out += [b.title for b in module.buttons]
            for card in module.cards:
                out += [card.title, card.subtitle or "", *(b.title for b in card.buttons)]
    return "\n".join(out)


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_the_product_layout_speaks_every_language(language: str) -> None:
    words = WORDS[language]
    layout = load_layout("product")
    context = _context(language, site_title="Northwind")

    (email,) = render(layout, "email", [JACKET], context=context, events=DROP)
    page, text = email_parts(email)
    assert words.price_drop in page and words.buy_now in page and words.unsubscribe in page
    assert html.unescape(page).count(words.footer) == 1 and words.footer in _plain(text)
    assert words.in_stock in page and words.in_stock in text
    assert words.price_drop.upper() in text and words.buy_now in text and UNSUBSCRIBE in text
    assert words.price_drop in (email.subject or "") and "Ridge Shell Jacket" in (email.subject or "")
    (call,) = provider_calls(email)
    validate_call("email", call)
    assert f'lang="{language}"' in page
    assert f'dir="{"rtl" if language == "ar" else "ltr"}"' in page

    (telegram,) = render(layout, "telegram", [JACKET], context=context, events=DROP)
    said = _chat_texts([telegram])
    assert words.price_drop in said and words.in_stock in said
    assert [b.title for m in telegram.modules for b in m.buttons] == [words.buy]
    for call in provider_calls(telegram):
        validate_call("telegram", call)

    if language != "en":
        for english in ENGLISH_ONLY:
            assert english not in page + text + said, (language, english)


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_the_digest_layout_speaks_every_language(language: str) -> None:
    words = WORDS[language]
    layout = load_layout("digest")
    context = _context(language)  # no site title: the layout's own headings

    (email,) = render(layout, "email", POSTS, context=context)
    page, text = email_parts(email)
    assert words.digest in page and words.three_new in _plain(page) and words.read_more in page
    assert words.generic_footer in html.unescape(page) and words.unsubscribe in page
    assert words.digest in text and UNSUBSCRIBE in text
    assert (email.subject or "").startswith(words.digest) and "Trail notes 1" in (email.subject or "")

    (telegram,) = render(layout, "telegram", POSTS, context=context)
    said = _chat_texts([telegram])
    assert said.startswith(f"<b>{words.latest}</b> · ")
    for call in provider_calls(telegram):
        validate_call("telegram", call)
    if language != "en":
        for english in (*ENGLISH_ONLY, "Your digest", "Latest"):
            assert english not in page + text + said, (language, english)


@pytest.mark.parametrize(
    ("language", "subject"),
    [
        ("en", "Your digest: Trail notes 1 and 1 more"),
        ("fr", "Votre résumé : Trail notes 1 et 1 autre"),  # a subject is one line of plain spaces
        ("ru", "Ваш дайджест: Trail notes 1 и ещё 1"),
        ("ar", "ملخصك: Trail notes 1 وعنصر آخر"),
        ("it", "Il tuo riepilogo: Trail notes 1 e un altro"),
    ],
)
def test_a_digest_subject_counts_in_the_language(language: str, subject: str) -> None:
    (email,) = render(load_layout("digest"), "email", POSTS[:2], context=_context(language))
    assert email.subject == subject
    (three,) = render(load_layout("digest"), "email", POSTS, context=_context("ar"))
    assert three.subject == "ملخصك: Trail notes 1 وعنصران آخران"  # the dual


def test_every_builtin_layout_and_format_renders_in_every_language() -> None:
    """No label breaks a payload in any language (lengths, markup, the validators)."""
    from layouts.render import builtin_layouts

    items = [JACKET, *POSTS]
    for language in i18n.LANGUAGES:
        for name in builtin_layouts():
            layout = load_layout(name)
            for fmt in layout.formats:
                for message in render(layout, fmt, items, context=_context(language), events=DROP):
                    for call in provider_calls(message, locale=language):
                        validate_call(fmt, call)


def test_english_stays_as_it_was_written() -> None:
    """The English render is the msgids: the same output as an English-only template."""
    (email,) = render(load_layout("digest"), "email", POSTS, context=_context("en"))
    page, text = email_parts(email)
    assert "3 new items · " in page and ">Read more &rarr;</a>" in page
    assert text.endswith(f"--\nUnsubscribe: {UNSUBSCRIBE}")
    (one,) = render(load_layout("product"), "email", [JACKET], context=_context("en_US"), events=DROP)
    assert one.subject == "Price drop: Ridge Shell Jacket now €199.00"


# --------------------------------------------------------------------------- builders and previews


def test_a_builders_own_words_follow_the_locale() -> None:
    """Messenger's "Open" button on a card with only a title and a link."""
    bare = Message(
        format="messenger",
        modules=(Module("cards", cards=(Card(title="Ridge", url="https://shop.example/r"),)),),
    )

    def button_titles(locale: str | None) -> list[str]:
        (call,) = provider_calls(bare, locale=locale)
        (element,) = call.body["message"]["attachment"]["payload"]["elements"]
        return [b["title"] for b in element["buttons"]]

    assert button_titles(None) == ["Open"] and button_titles("de") == ["Öffnen"]
    assert button_titles("ar") == ["فتح"]
    with i18n.using("fr"):
        assert button_titles(None) == ["Ouvrir"]  # the current translations
    assert Button("Open", "https://x.example").title == "Open"


def test_the_preview_pieces_speak_the_language() -> None:
    sender = Sender(name="Northwind", initial="N", time="09:00")
    discord = get_format("discord")
    (message,) = render(load_layout("single"), "discord", POSTS[:1], context=_context("fr"))
    (call,) = provider_calls(message)
    with i18n.using("fr"):
        assert "pas d’image" in img(None)
        assert "# annonces" in discord.preview_window("", sender)
        assert "Aujourd’hui à 09:00" in discord.preview_call(call, sender, 1)
        assert "canal · aperçu" in get_format("telegram").preview_window("", sender)
    assert "no image" in img(None) and "# announcements" in get_format("slack").preview_window("", sender)
    assert "Today at 09:00" in discord.preview_call(call, sender, 1)


# --------------------------------------------------------------------------- templates' gettext


def _user_layout(root: Path, template: str, filename: str = "telegram.j2") -> Path:
    folder = root / "mine"
    folder.mkdir(exist_ok=True)
    (folder / "layout.yaml").write_text("name: mine\ndescription: t\nper: item\n", encoding="utf-8")
    (folder / filename).write_text(template, encoding="utf-8")
    return folder


def test_a_user_layout_may_use_the_catalogues(tmp_path: Path) -> None:
    folder = _user_layout(
        tmp_path,
        '{{ text(_("Read more") ~ " | " ~ ngettext("%(num)d new item", "%(num)d new items", 5)'
        ' ~ " | " ~ _("Not in any catalogue: %(n)s", n=item.title) ~ " | " ~ gettext("Buy")) }}'
        '{% call text() %}{% trans title=item.title %}Back in stock: {{ title }}{% endtrans %}{% endcall %}',
    )  # fmt: skip
    layout = load_layout(str(folder))
    item = Item(key="k", title="<Jacket> & co", url="https://x.example/")
    (message,) = render(layout, "telegram", [item], context=RenderContext(locale="ru_RU", now=NOW))
    first, second = (m.text for m in message.modules)
    assert first == "Читать далее | 5 новых записей | Not in any catalogue: &lt;Jacket&gt; &amp; co | Купить"
    assert (
        second == "Снова в наличии: &lt;Jacket&gt; &amp; co"
    )  # arguments escaped, in an autoescaped template
    (plain,) = render(layout, "telegram", [item], context=RenderContext(locale="en", now=NOW))
    assert plain.modules[0].text == (
        "Read more | 5 new items | Not in any catalogue: &lt;Jacket&gt; &amp; co | Buy"
    )


def test_templates_gettext_is_held_to_the_render_limits(tmp_path: Path) -> None:
    folder = _user_layout(tmp_path, '{{ text(_("%(x)999999999s", x=1)) }}')
    with pytest.raises(LayoutError, match=r"mine/telegram\.j2"):
        render(load_layout(str(folder)), "telegram", POSTS[:1], context=RenderContext(now=NOW))
    folder = _user_layout(tmp_path, '{{ text(_("100% off")) }}')  # newstyle: a lone % is an error
    with pytest.raises(LayoutError, match=r"mine/telegram\.j2"):
        render(load_layout(str(folder)), "telegram", POSTS[:1], context=RenderContext(now=NOW))
    folder = _user_layout(tmp_path, '{{ text(_("100%% off") ~ ngettext("a", "b", "x")) }}')
    with pytest.raises(LayoutError, match=r"mine/telegram\.j2"):  # a count that is no number
        render(load_layout(str(folder)), "telegram", POSTS[:1], context=RenderContext(now=NOW))


# --------------------------------------------------------------------------- through the CLI


@pytest.fixture(scope="module")
def shop_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The demo shop and blog on loopback, polled twice (a price drop, a restock)."""
    db = tmp_path_factory.mktemp("i18n") / "i18n.duckdb"
    with SampleServer() as server:
        base = server.base_url
        server.put("/shop.xml", sample_text("shop.xml").replace("{base}", base), "application/xml")
        server.put("/blog.rss", sample_text("blog.rss").replace("{base}", base), "application/rss+xml")
        for name, path in (("shop", "/shop.xml"), ("blog", "/blog.rss")):
            assert _run(db, "source", "add", name, base + path) == 0
        server.put("/shop.xml", sample_text("shop-v2.xml").replace("{base}", base), "application/xml")
        assert _run(db, "poll", "--force") == 0
        yield db


def _run(db: Path, *args: str) -> int:
    try:
        main(["--db", str(db), *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture
def cli(shop_db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setattr(cli_module.out, "width", 400)
    monkeypatch.delenv("FEEDCAST_LAYOUTS", raising=False)
    return Cli(shop_db, capsys)


def _bodies(payloads: object) -> str:
    assert isinstance(payloads, list) and payloads
    return "\n".join(json.dumps(p["body"], ensure_ascii=False) for p in payloads)


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_feedcast_preview_locale_through_the_cli(cli: Cli, language: str, tmp_path: Path) -> None:
    words = WORDS[language]
    base = ("preview", "--source", "shop", "--locale", language, "--limit", "4")
    email = _bodies(cli.json(*base, "--layout", "product", "--channel-kind", "email"))
    assert words.buy_now in email and words.price_drop in email and words.in_stock in email
    telegram = _bodies(cli.json(*base, "--layout", "product", "--channel-kind", "telegram"))
    assert words.buy in telegram and words.price_drop in telegram
    digest = _bodies(
        cli.json("preview", "--source", "blog", "--locale", language, "--layout", "digest", "--channel-kind", "email")
    )  # fmt: skip
    assert words.read_more in digest
    page = tmp_path / "preview.html"
    cli(*base, "--layout", "product", "--channel-kind", "telegram", "--html", str(page))
    shown = page.read_text(encoding="utf-8")
    assert words.buy in shown and words.price_drop in shown
    if language != "en":
        assert "Price drop" not in email + telegram + shown and "Read more" not in digest


def test_an_arabic_preview_page_reads_right_to_left(cli: Cli, tmp_path: Path) -> None:
    page = tmp_path / "ar.html"
    cli("preview", "--source", "shop", "--locale", "ar", "--layout", "product", "--channel-kind", "telegram",
        "--html", str(page))  # fmt: skip
    shown = page.read_text(encoding="utf-8")
    assert '<div class="stage" lang="ar" dir="rtl">' in shown  # the provider's window, mirrored
    assert shown.count('<div class="body" dir="rtl">') == shown.count('class="message"')
    assert '<header class="top" lang="en">' in shown and "قناة · معاينة" in shown  # "channel · preview"
    english = tmp_path / "en.html"
    cli(
        "preview",
        "--source",
        "shop",
        "--layout",
        "product",
        "--channel-kind",
        "telegram",
        "--html",
        str(english),
    )
    assert '<div class="stage">' in english.read_text(encoding="utf-8")
    email = tmp_path / "ar-email.html"
    cli("preview", "--source", "shop", "--locale", "ar", "--layout", "product", "--channel-kind", "email",
        "--html", str(email))  # fmt: skip
    document = html.unescape(email.read_text(encoding="utf-8"))
    assert '<html lang="ar" dir="rtl"' in document and '<body dir="rtl"' in document
    assert "إليك" in document and "<bdi class='muted'>&lt;newsletter&gt;</bdi>" in email.read_text(
        encoding="utf-8"
    )


# --------------------------------------------------------------------------- right to left, in a browser


def _sync_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if on_ci():
            pytest.fail("playwright is missing on CI: scripts/setup installs it (pyproject.toml, dev)")
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    return sync_playwright


ARABIC_JACKET = Item(
    key="nw-ar",
    title="سترة خفيفة",
    url="https://shop.example/p/ar",
    summary="<p>سترة خفيفة للأيام الممطرة.</p>",
    price=Decimal("199.00"),
    currency="USD",
    availability="in_stock",
    brand="نورثويند",
)

# the body's direction, and where the card's texts are drawn within the card
_LAYOUT_JS = """() => {
  const box = (el) => { const r = document.createRange(); r.selectNodeContents(el);
                        const b = r.getBoundingClientRect(); return {left: b.left, right: b.right}; };
  const title = document.querySelector('h1.fc-title');
  const card = title.closest('table');
  const button = [...document.querySelectorAll('a')].find(a => a.textContent.trim() === BUY);
  const c = card.getBoundingClientRect();
  return {direction: getComputedStyle(document.body).direction,
          html_dir: document.documentElement.dir, lang: document.documentElement.lang,
          card: {left: c.left, right: c.right}, title: box(title), button: box(button),
          text_align: getComputedStyle(title).textAlign};
}"""


@pytest.mark.slow
def test_an_arabic_email_reads_right_to_left_in_headless_chromium(tmp_path: Path) -> None:
    from tests.test_preview import _chromium

    chromium = _chromium()
    sync_playwright = _sync_playwright()
    layout = load_layout("product")
    found: dict[str, dict[str, Any]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu", "--disable-quic"]
        )
        try:
            for language, item in (("ar", ARABIC_JACKET), ("en", JACKET)):
                (email,) = render(layout, "email", [item], context=_context(language, site_title="Northwind"))
                document, _text = email_parts(email)
                file = tmp_path / f"email-{language}.html"
                file.write_text(document, encoding="utf-8")
                page = browser.new_page(viewport={"width": 800, "height": 1100})
                page.route(re.compile(r"^https?://"), lambda route: route.abort())  # no network: images off
                page.goto(file.as_uri())
                found[language] = page.evaluate(_LAYOUT_JS.replace("BUY", repr(WORDS[language].buy_now)))
                shot = tmp_path / f"email-{language}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
                if keep := os.environ.get("FEEDCAST_KEEP_SCREENSHOTS"):
                    shutil.copy(shot, Path(keep) / shot.name)
                page.close()
        finally:
            browser.close()

    arabic, english = found["ar"], found["en"]
    assert arabic["direction"] == "rtl" and arabic["html_dir"] == "rtl" and arabic["lang"] == "ar"
    assert english["direction"] == "ltr"
    for shown in (arabic, english):
        assert (
            shown["title"]["right"] - shown["title"]["left"]
            < (shown["card"]["right"] - shown["card"]["left"]) / 2
        )
    middle = (arabic["card"]["left"] + arabic["card"]["right"]) / 2
    # Arabic: the title and the "Buy now" button hug the card's right edge; English: its left
    assert arabic["title"]["left"] > middle and arabic["button"]["left"] > middle, arabic
    assert arabic["card"]["right"] - arabic["title"]["right"] < 60, arabic
    assert english["title"]["right"] < middle and english["button"]["right"] < middle, english
    assert english["title"]["left"] - english["card"]["left"] < 60, english
