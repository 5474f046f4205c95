"""Provider payloads and their validators (layouts.formats).

Unit tests per format and per rule, a table of violations the validator must name,
property tests over random Messages (every call valid, no text lost but by a marked
cut), and golden files: ``UPDATE_GOLDEN=1 pytest tests/test_layouts_payloads.py``
rewrites ``tests/data/golden/payloads/*.json``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedcast.kernel.errors import PayloadError
from feedcast.kernel.models import Button, Card, Message, Module, ProviderCall
from layouts.formats import BUTTONS_TEXT, ELLIPSIS, FORMATS, MB, provider_calls, validate_call
from layouts.formats.jsonhook import json_document
from layouts.html import telegram_text_length, telegram_visible_text
from layouts.text import utf16_len

GOLDEN = Path(__file__).parent / "data" / "golden" / "payloads"
URL = "https://example.com"


def calls_of(
    fmt: str, *modules: Module, subject: str | None = None, sizes: dict[str, int] | None = None
) -> list[ProviderCall]:
    """provider_calls of a Message made of ``modules``, every call checked by the validator."""
    result = provider_calls(Message(fmt, tuple(modules), subject=subject), media_sizes=sizes)
    for call in result:
        validate_call(fmt, call)
    return result


def text(body: str | None, *buttons: Button) -> Module:
    return Module("text", text=body, buttons=buttons)


def media(kind: str, url: str, caption: str | None = None, *buttons: Button) -> Module:
    return Module(kind, text=caption, url=url, buttons=buttons)


def cards(
    count: int, *, caption: str | None = None, buttons: tuple[Button, ...] = (), image: bool = True
) -> Module:
    return Module(
        "cards",
        text=caption,
        buttons=buttons,
        cards=tuple(
            Card(
                title=f"Product {i}",
                subtitle=f"Subtitle {i}",
                image=f"{URL}/p{i}.jpg" if image else None,
                url=f"{URL}/p{i}",
                buttons=(Button("Buy", f"{URL}/buy/{i}"),),
            )
            for i in range(count)
        ),
    )


BUY = Button("Buy now", f"{URL}/buy")
MORE = Button("Read more", f"{URL}/more")


def words(count: int, word: str = "lorem") -> str:
    return " ".join(f"{word}{i}" for i in range(count))


# =========================================================================== telegram


def test_telegram_text_modules_are_packed_into_one_message() -> None:
    result = calls_of("telegram", text("<b>One</b>"), text("Two &amp; two"), text("Three"))
    assert [c.method for c in result] == ["sendMessage"]
    body = result[0].body
    assert body["text"] == "<b>One</b>\n\nTwo &amp; two\n\nThree"
    assert body["parse_mode"] == "HTML"
    assert body["link_preview_options"] == {"is_disabled": True}
    assert "reply_markup" not in body


def test_telegram_packing_never_cuts_a_module_that_fits() -> None:
    block = "x" * 2000
    result = calls_of("telegram", text(block), text(block), text(block))
    assert [c.body["text"] for c in result] == [f"{block}\n\n{block}", block]


def test_telegram_packs_up_to_exactly_4096() -> None:
    first, second = "a" * 2047, "b" * 2047  # 2047 + 2 + 2047 = 4096
    assert len(calls_of("telegram", text(first), text(second))) == 1
    assert len(calls_of("telegram", text(first), text(second + "b"))) == 2


def test_telegram_counts_after_entity_parsing_and_in_utf16() -> None:
    entities = "&lt;" * 4096  # 16384 characters of source, 4096 visible
    result = calls_of("telegram", text(entities))
    assert result[0].body["text"] == entities
    emoji = "😀" * 2049  # 2049 code points, 4098 UTF-16 units
    cut = calls_of("telegram", text(emoji))[0].body["text"]
    assert cut.endswith(ELLIPSIS)
    assert telegram_text_length(cut) <= 4096


def test_telegram_module_alone_too_long_is_truncated_with_ellipsis() -> None:
    long = "<b>" + words(1500) + "</b>"
    result = calls_of("telegram", text("intro"), text(long), text("outro"))
    assert [telegram_text_length(c.body["text"]) <= 4096 for c in result] == [True] * len(result)
    visible = [telegram_visible_text(c.body["text"]) for c in result]
    assert any(v.endswith(ELLIPSIS) and v.startswith("lorem0 lorem1") for v in visible)
    assert "intro" in visible[0] and "outro" in visible[-1]


def test_telegram_buttons_make_an_inline_keyboard_and_end_the_message() -> None:
    result = calls_of("telegram", text("one"), text("two", MORE, BUY), text("three"))
    assert [c.body["text"] for c in result] == ["one\n\ntwo", "three"]
    assert result[0].body["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Read more", "url": f"{URL}/more"}],
            [{"text": "Buy now", "url": f"{URL}/buy"}],
        ]
    }
    assert "reply_markup" not in result[1].body


def test_telegram_button_text_is_cut_to_64_and_bad_urls_dropped() -> None:
    long = Button("word " * 30, f"{URL}/x")
    bad = Button("Evil", "javascript:alert(1)")
    relative = Button("Relative", "/path")
    result = calls_of("telegram", text("hi", long, bad, relative))
    rows = result[0].body["reply_markup"]["inline_keyboard"]
    assert len(rows) == 1
    assert len(rows[0][0]["text"]) <= 64 and rows[0][0]["text"].endswith(ELLIPSIS)


def test_telegram_buttons_without_text_hang_on_the_previous_call() -> None:
    result = calls_of("telegram", media("image", f"{URL}/a.jpg", "cap"), text(None, MORE))
    assert [c.method for c in result] == ["sendPhoto"]
    assert result[0].body["reply_markup"]["inline_keyboard"][0][0]["url"] == f"{URL}/more"


def test_telegram_buttons_alone_become_a_message_of_links() -> None:
    result = calls_of("telegram", text(None, MORE))
    assert result[0].method == "sendMessage"
    assert f'<a href="{URL}/more">Read more</a>' in result[0].body["text"]


def test_telegram_photo_with_caption_and_keyboard() -> None:
    result = calls_of("telegram", media("image", f"{URL}/a.jpg", "<b>Title</b>", MORE))
    assert result == [
        ProviderCall(
            "sendPhoto",
            {
                "photo": f"{URL}/a.jpg",
                "caption": "<b>Title</b>",
                "parse_mode": "HTML",
                "reply_markup": {"inline_keyboard": [[{"text": "Read more", "url": f"{URL}/more"}]]},
            },
        )
    ]


@pytest.mark.parametrize(
    ("kind", "url", "method", "field"),
    [
        ("image", f"{URL}/a.png", "sendPhoto", "photo"),
        ("image", f"{URL}/photo?id=3", "sendPhoto", "photo"),
        ("video", f"{URL}/v.mp4", "sendVideo", "video"),
        ("audio", f"{URL}/episode.mp3", "sendAudio", "audio"),
        ("file", f"{URL}/report.pdf", "sendDocument", "document"),
        ("file", f"{URL}/bundle.zip", "sendDocument", "document"),
    ],
)
def test_telegram_media_methods(kind: str, url: str, method: str, field: str) -> None:
    result = calls_of("telegram", media(kind, url, "caption"))
    assert result == [ProviderCall(method, {field: url, "caption": "caption", "parse_mode": "HTML"})]


def test_telegram_caption_over_1024_goes_in_a_following_message() -> None:
    caption = words(200)  # ~1300 characters
    result = calls_of("telegram", media("image", f"{URL}/a.jpg", caption), text("after"))
    assert [c.method for c in result] == ["sendPhoto", "sendMessage"]
    assert result[0].body == {"photo": f"{URL}/a.jpg"}
    assert result[1].body["text"] == caption + "\n\nafter"
    # with buttons, the text carries the keyboard and ends there
    result = calls_of("telegram", media("image", f"{URL}/a.jpg", caption, MORE), text("after"))
    assert [c.method for c in result] == ["sendPhoto", "sendMessage", "sendMessage"]
    assert result[0].body == {"photo": f"{URL}/a.jpg"}
    assert result[1].body["text"] == caption
    assert result[1].body["reply_markup"]["inline_keyboard"][0][0]["text"] == "Read more"


def test_telegram_caption_exactly_1024_stays_a_caption() -> None:
    caption = "&amp;" * 1024
    result = calls_of("telegram", media("image", f"{URL}/a.jpg", caption))
    assert result[0].body["caption"] == caption


@pytest.mark.parametrize(
    ("kind", "url", "size"),
    [
        ("image", f"{URL}/big.jpg", 5 * MB + 1),
        ("video", f"{URL}/big.mp4", 20 * MB + 1),
        ("audio", f"{URL}/big.mp3", 20 * MB + 1),
        ("file", f"{URL}/big.pdf", 20 * MB + 1),
        ("image", f"{URL}/logo.svg", None),
        ("video", f"{URL}/clip.webm", None),
        ("audio", f"{URL}/song.ogg", None),
        ("file", f"{URL}/letter.docx", None),
        ("file", f"{URL}/download?id=1", None),
    ],
)
def test_telegram_media_it_cannot_fetch_becomes_a_link(kind: str, url: str, size: int | None) -> None:
    sizes = {url: size} if size else None
    result = calls_of("telegram", media(kind, url, "<i>caption</i>", MORE), sizes=sizes)
    assert [c.method for c in result] == ["sendMessage"]
    body = result[0].body
    assert body["text"].startswith("<i>caption</i>\n\n")
    assert f'<a href="{url.replace("&", "&amp;")}">' in body["text"]
    assert body["reply_markup"]["inline_keyboard"][0][0]["text"] == "Read more"


def test_telegram_media_at_the_limit_is_sent_by_url() -> None:
    url = f"{URL}/edge.jpg"
    assert calls_of("telegram", media("image", url), sizes={url: 5 * MB})[0].method == "sendPhoto"


def test_telegram_media_with_a_non_http_url_is_text() -> None:
    result = calls_of("telegram", media("image", "ftp://example.com/a.jpg", "cap"))
    assert [c.method for c in result] == ["sendMessage"]
    assert "ftp://example.com/a.jpg" in result[0].body["text"]


def test_telegram_cards_make_an_album_then_a_list_with_the_buttons() -> None:
    result = calls_of("telegram", cards(3, caption="<b>New in</b>", buttons=(MORE,)))
    assert [c.method for c in result] == ["sendMediaGroup", "sendMessage"]
    album = result[0].body
    assert "reply_markup" not in album
    assert album["media"][0] == {
        "type": "photo",
        "media": f"{URL}/p0.jpg",
        "caption": "<b>New in</b>",
        "parse_mode": "HTML",
    }
    assert all("caption" not in item for item in album["media"][1:])
    listing = result[1].body
    assert '<b><a href="https://example.com/p0">Product 0</a></b>' in listing["text"]
    assert '<a href="https://example.com/buy/2">Buy</a>' in listing["text"]
    assert listing["reply_markup"]["inline_keyboard"] == [[{"text": "Read more", "url": f"{URL}/more"}]]


@pytest.mark.parametrize(
    ("count", "groups"), [(1, [1]), (2, [2]), (10, [10]), (11, [6, 5]), (21, [7, 7, 7]), (25, [9, 8, 8])]
)
def test_telegram_albums_hold_2_to_10_photos(count: int, groups: list[int]) -> None:
    result = calls_of("telegram", cards(count))
    photos = [
        len(c.body["media"]) if c.method == "sendMediaGroup" else 1
        for c in result
        if c.method != "sendMessage"
    ]
    assert photos == groups
    if count == 1:
        assert result[0].method == "sendPhoto"
    assert result[-1].method == "sendMessage"


def test_telegram_cards_without_usable_photos_are_only_listed() -> None:
    module = cards(3)
    sizes = {f"{URL}/p0.jpg": 6 * MB, f"{URL}/p1.jpg": 6 * MB}
    result = calls_of("telegram", module, sizes=sizes)
    assert [c.method for c in result] == ["sendPhoto", "sendMessage"]
    assert result[0].body["photo"] == f"{URL}/p2.jpg"
    assert [c.method for c in calls_of("telegram", cards(4, image=False))] == ["sendMessage"]


def test_telegram_long_card_caption_moves_to_the_list() -> None:
    caption = words(300)
    result = calls_of("telegram", cards(2, caption=caption))
    assert "caption" not in result[0].body["media"][0]
    assert telegram_visible_text(result[1].body["text"]).startswith(caption)


def test_telegram_many_cards_list_is_split_between_cards() -> None:
    many = Module(
        "cards",
        cards=tuple(
            Card(title=f"Card {i} " + "t" * 150, subtitle="s" * 200, url=f"{URL}/{i}") for i in range(60)
        ),
    )
    result = calls_of("telegram", many)
    listings = [telegram_visible_text(c.body["text"]) for c in result if c.method == "sendMessage"]
    assert len(listings) > 1
    assert all(not v.endswith(ELLIPSIS) for v in listings)
    assert sum(v.count("• ") for v in listings) == 60


def test_telegram_escapes_card_titles() -> None:
    module = Module("cards", cards=(Card(title="Fish & <Chips>", url=f"{URL}/?a=1&b=2"),))
    body = calls_of("telegram", module)[0].body
    assert '<a href="https://example.com/?a=1&amp;b=2">Fish &amp; &lt;Chips&gt;</a>' in body["text"]


def test_telegram_invalid_html_in_a_module_is_a_payload_error() -> None:
    with pytest.raises(PayloadError) as err:
        provider_calls(Message("telegram", (text("<div>x</div>"),)))
    assert err.value.rule == "telegram.text.html"


def test_telegram_blank_modules_send_nothing() -> None:
    assert calls_of("telegram", text("  "), text("<b> </b>"), text(None)) == []


# =========================================================================== messenger


def fb(call: ProviderCall) -> dict[str, Any]:
    assert call.method == "messages"
    assert call.body["messaging_type"] == "UPDATE"
    message: dict[str, Any] = call.body["message"]
    return message


def test_messenger_text_is_packed_up_to_2000() -> None:
    block = "y" * 999
    result = calls_of("messenger", text(block), text(block), text(block))
    assert [fb(c) for c in result] == [{"text": f"{block}\n\n{block}"}, {"text": block}]


def test_messenger_long_text_is_cut_at_a_word_boundary() -> None:
    result = calls_of("messenger", text(words(400)))
    cut = fb(result[0])["text"]
    assert utf16_len(cut) <= 2000 and cut.endswith(ELLIPSIS)
    assert words(400).startswith(cut[:-1])
    assert cut[-2].isdigit()  # a whole word before the ellipsis


def test_messenger_text_with_buttons_is_a_button_template() -> None:
    result = calls_of("messenger", text("Hello", MORE))
    assert fb(result[0]) == {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "button",
                "text": "Hello",
                "buttons": [{"type": "web_url", "url": f"{URL}/more", "title": "Read more"}],
            },
        }
    }


def test_messenger_button_template_limits() -> None:
    buttons = tuple(Button(f"A very long button title {i}", f"{URL}/{i}") for i in range(5))
    result = calls_of("messenger", text(words(200), *buttons))
    first, second = (fb(c)["attachment"]["payload"] for c in result)
    assert utf16_len(first["text"]) <= 640 and first["text"].endswith(ELLIPSIS)
    assert len(first["buttons"]) == 3 and len(second["buttons"]) == 2
    assert second["text"] == BUTTONS_TEXT
    assert all(len(b["title"]) <= 20 for b in first["buttons"] + second["buttons"])


def test_messenger_media_is_an_attachment_followed_by_its_text() -> None:
    result = calls_of(
        "messenger", media("image", f"{URL}/a.jpg", "A caption"), media("video", f"{URL}/v.mp4", "Clip", MORE)
    )
    messages = [fb(c) for c in result]
    assert messages[0] == {
        "attachment": {"type": "image", "payload": {"url": f"{URL}/a.jpg", "is_reusable": True}}
    }
    assert messages[1] == {"text": "A caption"}
    assert messages[2]["attachment"]["type"] == "video"
    assert messages[3]["attachment"]["payload"]["template_type"] == "button"
    assert messages[3]["attachment"]["payload"]["text"] == "Clip"


@pytest.mark.parametrize(
    ("kind", "size", "linked"),
    [
        ("image", 8 * MB, False),
        ("image", 8 * MB + 1, True),
        ("file", 25 * MB, False),
        ("audio", 25 * MB + 1, True),
    ],
)
def test_messenger_media_over_the_url_limit_becomes_a_link(kind: str, size: int, linked: bool) -> None:
    url = f"{URL}/thing"
    result = calls_of("messenger", media(kind, url, "caption"), sizes={url: size})
    if linked:
        assert [fb(c) for c in result] == [{"text": f"caption\n\n{url}"}]
    else:
        assert fb(result[0])["attachment"]["type"] == kind


def test_messenger_linked_media_with_buttons_keeps_the_url_in_the_template() -> None:
    url = f"{URL}/huge.jpg"
    result = calls_of("messenger", media("image", url, words(300), MORE), sizes={url: 9 * MB})
    payload = fb(result[0])["attachment"]["payload"]
    assert payload["text"].endswith("\n" + url)
    assert ELLIPSIS in payload["text"]


def test_messenger_cards_are_generic_templates_of_ten() -> None:
    result = calls_of("messenger", cards(23, caption="Our picks"))
    messages = [fb(c) for c in result]
    assert messages[0] == {"text": "Our picks"}
    sizes = [len(m["attachment"]["payload"]["elements"]) for m in messages[1:]]
    assert sizes == [10, 10, 3]
    assert messages[1]["attachment"]["payload"]["elements"][0] == {
        "title": "Product 0",
        "subtitle": "Subtitle 0",
        "image_url": f"{URL}/p0.jpg",
        "default_action": {"type": "web_url", "url": f"{URL}/p0"},
        "buttons": [{"type": "web_url", "url": f"{URL}/buy/0", "title": "Buy"}],
    }


def test_messenger_card_fields_are_cut_to_their_limits() -> None:
    card = Card(
        title="T" * 200,
        subtitle="S " * 100,
        image=f"{URL}/big.jpg",
        buttons=tuple(Button("Button with a long title", f"{URL}/{i}") for i in range(5)),
    )
    result = calls_of("messenger", Module("cards", cards=(card,)), sizes={f"{URL}/big.jpg": 9 * MB})
    element = fb(result[0])["attachment"]["payload"]["elements"][0]
    assert len(element["title"]) == 80 and element["title"].endswith(ELLIPSIS)
    assert len(element["subtitle"]) <= 80
    assert "image_url" not in element  # over 8 MB
    assert "default_action" not in element
    assert len(element["buttons"]) == 3


def test_messenger_cards_buttons_without_text_follow_the_carousel() -> None:
    result = calls_of("messenger", cards(2, buttons=(MORE,)))
    assert fb(result[-1])["attachment"]["payload"] == {
        "template_type": "button",
        "text": BUTTONS_TEXT,
        "buttons": [{"type": "web_url", "url": f"{URL}/more", "title": "Read more"}],
    }


# =========================================================================== email


def test_email_document_and_plain_text_are_used_verbatim() -> None:
    html = "<!DOCTYPE html><html><head><style>p{color:red}</style></head><body><p>Hello</p></body></html>"
    result = calls_of("email", text(html), text("Hello (plain)"), subject="Weekly  news\nissue 3")
    assert result == [
        ProviderCall("smtp", {"subject": "Weekly news issue 3", "html": html, "text": "Hello (plain)\n"})
    ]


def test_email_fragment_is_wrapped_and_plain_text_derived() -> None:
    result = calls_of("email", text('<p>Hi <a href="https://example.com/x">there</a></p>'), subject="S")
    body = result[0].body
    assert body["html"].startswith("<!DOCTYPE html>") and "<p>Hi" in body["html"]
    assert "Hi there" in body["text"] and "https://example.com/x" in body["text"]


def test_email_media_cards_and_buttons_go_inside_the_body_in_order() -> None:
    html = "<html><body><p>Main</p></body></html>"
    result = calls_of(
        "email",
        media("image", f"{URL}/top.jpg", "<p>Top</p>"),
        text(html, MORE),
        cards(2),
        media("file", f"{URL}/doc.pdf"),
        subject="S",
    )
    out = result[0].body["html"]
    order = [out.index(s) for s in ("top.jpg", "<p>Main</p>", "/more", "Product 1", "doc.pdf", "</body>")]
    assert order == sorted(order)


def test_email_subject_rules() -> None:
    subject = calls_of("email", text("<p>x</p>"), subject="word " * 400)[0].body["subject"]
    assert len(subject) <= 998 and subject.endswith(ELLIPSIS) and "\n" not in subject
    derived = calls_of("email", text("<p>First line</p><p>second</p>"))[0].body["subject"]
    assert derived == "First line"


def test_email_with_three_text_modules_breaks_the_convention() -> None:
    with pytest.raises(PayloadError) as err:
        provider_calls(Message("email", (text("<p>a</p>"), text("b"), text("c"))))
    assert err.value.rule == "email.modules"


def test_email_document_without_body_gets_fragments_before_its_end() -> None:
    html = "<html><p>Main</p></html>"
    out = calls_of("email", text(html), media("image", f"{URL}/a.jpg"), subject="S")[0].body["html"]
    assert out.index("<p>Main</p>") < out.index("a.jpg") < out.index("</html>")
    assert out.count("<html") == 1


def test_email_of_media_only_is_wrapped_and_has_a_derived_subject() -> None:
    body = calls_of("email", media("file", f"{URL}/report.pdf", "<p>Quarterly report</p>"))[0].body
    assert "<body>" in body["html"] and "report.pdf" in body["html"]
    assert body["subject"] == "Quarterly report"
    assert "https://example.com/report.pdf" in body["text"]


def test_email_without_content_sends_nothing() -> None:
    assert calls_of("email", text(None), subject="S") == []


# =========================================================================== slack


def test_slack_blocks_for_text_image_buttons() -> None:
    result = calls_of(
        "slack", media("image", f"{URL}/a.jpg", "*<https://example.com|Title>*", MORE), subject="Digest"
    )
    assert result == [
        ProviderCall(
            "POST",
            {
                "text": "Digest",
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": "*<https://example.com|Title>*"}},
                    {"type": "image", "image_url": f"{URL}/a.jpg", "alt_text": "Title"},
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "text": {"type": "plain_text", "text": "Read more", "emoji": True},
                                "url": f"{URL}/more",
                            }
                        ],
                    },
                ],
            },
        )
    ]


def test_slack_section_cut_keeps_links_whole() -> None:
    long = (
        "x " * 1490 + "<https://example.com/a-long-link|a link label that crosses the limit>" + " tail" * 50
    )
    section = calls_of("slack", text(long))[0].body["blocks"][0]["text"]["text"]
    assert utf16_len(section) <= 3000 and section.endswith(ELLIPSIS)
    assert "<https://example.com/a-long-link" not in section


def test_slack_splits_calls_at_50_blocks_between_modules() -> None:
    modules = [text(f"item {i}", Button("Open", f"{URL}/{i}")) for i in range(40)]  # 2 blocks each
    result = calls_of("slack", *modules)
    assert [len(c.body["blocks"]) for c in result] == [50, 30]
    assert result[1].body["blocks"][0]["type"] == "section"  # a module's blocks stay together
    assert result[1].body["text"] == "item 25"


def test_slack_buttons_cut_to_75_and_25_per_actions_block() -> None:
    buttons = tuple(Button("b" * 100, f"{URL}/{i}") for i in range(30))
    blocks = calls_of("slack", text("many", *buttons))[0].body["blocks"]
    assert [len(b["elements"]) for b in blocks if b["type"] == "actions"] == [25, 5]
    assert len(blocks[1]["elements"][0]["text"]["text"]) == 75


def test_slack_cards_and_other_media() -> None:
    blocks = calls_of("slack", cards(1), media("audio", f"{URL}/ep.mp3", "Episode"))[0].body["blocks"]
    assert blocks[0]["text"]["text"] == "*<https://example.com/p0|Product 0>*\nSubtitle 0"
    assert blocks[0]["accessory"] == {"type": "image", "image_url": f"{URL}/p0.jpg", "alt_text": "Product 0"}
    assert blocks[1]["type"] == "actions"
    assert blocks[2]["text"]["text"] == "Episode"
    assert blocks[3]["text"]["text"] == "<https://example.com/ep.mp3|🎧 ep.mp3>"


def test_slack_fallback_text_is_escaped() -> None:
    assert (
        calls_of("slack", text("x"), subject="Fish & <Chips>")[0].body["text"] == "Fish &amp; &lt;Chips&gt;"
    )
    assert calls_of("slack", text("*Bold* <https://example.com|link> &amp; more"))[0].body["text"] == (
        "Bold link &amp; more"
    )


# =========================================================================== discord


def test_discord_content_and_embeds() -> None:
    result = calls_of("discord", text("**Hello**", MORE), media("image", f"{URL}/a.jpg", "caption"))
    assert result == [
        ProviderCall(
            "POST",
            {
                "content": "**Hello**\n\n[Read more](<https://example.com/more>)",
                "embeds": [{"image": {"url": f"{URL}/a.jpg"}, "description": "caption"}],
                "allowed_mentions": {"parse": []},
            },
        )
    ]


def test_discord_text_after_an_embed_starts_a_new_call() -> None:
    result = calls_of("discord", media("image", f"{URL}/a.jpg"), text("after"))
    assert [set(c.body) - {"allowed_mentions"} for c in result] == [{"embeds"}, {"content"}]


def test_discord_content_is_packed_up_to_2000() -> None:
    result = calls_of("discord", text("z" * 999), text("z" * 999), text("z" * 999))
    assert [len(c.body["content"]) for c in result] == [2000, 999]


def test_discord_embeds_ten_per_call_and_6000_characters() -> None:
    assert [len(c.body["embeds"]) for c in calls_of("discord", cards(23))] == [10, 10, 3]
    heavy = Module(
        "cards",
        cards=tuple(Card(title="t" * 300, subtitle="d " * 1500, url=f"{URL}/{i}") for i in range(4)),
    )
    result = calls_of("discord", heavy)
    assert [len(c.body["embeds"]) for c in result] == [1, 1, 1, 1]
    assert len(result[0].body["embeds"][0]["title"]) == 256


def test_discord_cut_does_not_leave_a_code_block_open() -> None:
    long = "```\n" + "code line\n" * 400 + "```"
    content = calls_of("discord", text(long))[0].body["content"]
    assert content.count("```") % 2 == 0 and ELLIPSIS in content


# =========================================================================== json


def test_json_document_shape() -> None:
    message = Message(
        "json",
        (
            text('{"title": "A", "n": 1}'),
            Module("cards", cards=(Card("C", url=f"{URL}/c"),)),
            text("not json"),
        ),
        subject="S",
        item_keys=("k1", "k2"),
    )
    result = provider_calls(message)
    assert len(result) == 1 and result[0].method == "POST"
    validate_call("json", result[0])
    assert result[0].body == json_document(message)
    body = result[0].body
    assert body["format"] == "feedcast.v1" and body["subject"] == "S" and body["items"] == ["k1", "k2"]
    assert body["modules"][0]["data"] == {"title": "A", "n": 1}
    assert body["modules"][1]["cards"] == [
        {"title": "C", "subtitle": None, "image": None, "url": f"{URL}/c", "buttons": []}
    ]
    assert body["modules"][2]["data"] is None
    assert calls_of("json") == []


def test_json_constants_are_not_data() -> None:
    body = calls_of("json", text("[NaN]"))[0].body
    assert body["modules"][0]["data"] is None


def test_payload_error_is_a_feedcast_error() -> None:
    from feedcast.kernel.errors import FeedcastError

    err = PayloadError("telegram.text.length", "too long")
    assert isinstance(err, FeedcastError) and err.rule == "telegram.text.length" and err.detail == "too long"


def test_unknown_format() -> None:
    with pytest.raises(PayloadError) as err:
        provider_calls(Message("sms", (text("x"),)))
    assert err.value.rule == "format"
    with pytest.raises(PayloadError) as err:
        validate_call("sms", ProviderCall("POST", {}))
    assert err.value.rule == "format"


# =========================================================================== the validator

TG_MSG: dict[str, Any] = {"text": "hi", "parse_mode": "HTML"}
TG_PHOTO: dict[str, Any] = {"photo": f"{URL}/a.jpg", "caption": "c", "parse_mode": "HTML"}
TG_GROUP: dict[str, Any] = {
    "media": [{"type": "photo", "media": f"{URL}/a.jpg"}, {"type": "photo", "media": f"{URL}/b.jpg"}]
}
KEY = {"text": "k", "url": f"{URL}/k"}
FB_TEXT: dict[str, Any] = {"messaging_type": "UPDATE", "message": {"text": "hi"}}
FB_BUTTON = {"type": "web_url", "url": f"{URL}/b", "title": "Go"}
FB_BTN_TPL: dict[str, Any] = {
    "messaging_type": "UPDATE",
    "message": {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "button", "text": "t", "buttons": [FB_BUTTON]},
        }
    },
}
FB_GENERIC: dict[str, Any] = {
    "messaging_type": "UPDATE",
    "message": {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "generic", "elements": [{"title": "t", "buttons": [FB_BUTTON]}]},
        }
    },
}
FB_IMAGE: dict[str, Any] = {
    "messaging_type": "UPDATE",
    "message": {"attachment": {"type": "image", "payload": {"url": f"{URL}/a.jpg", "is_reusable": True}}},
}
EMAIL: dict[str, Any] = {"subject": "S", "html": "<p>x</p>", "text": "x"}
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}
SLACK: dict[str, Any] = {"text": "x", "blocks": [SECTION]}
SLACK_BUTTON = {"type": "button", "text": {"type": "plain_text", "text": "b"}, "url": f"{URL}/b"}
DISCORD: dict[str, Any] = {"content": "x", "embeds": [{"title": "t", "description": "d"}]}
JSON_BODY: dict[str, Any] = json_document(Message("json", (text("x"),), subject="S"))


def patch(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with ``value`` at ``path`` (``a.b.0.c``; value DELETE removes)."""
    body = copy.deepcopy(base)
    *parents, last = path.split(".")
    target: Any = body
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        if value is DELETE:
            del target[int(last)]
        else:
            target[int(last)] = value
    elif value is DELETE:
        del target[last]
    else:
        target[last] = value
    return body


DELETE = object()

VALID = [
    ("telegram", "sendMessage", TG_MSG),
    ("telegram", "sendMessage", {**TG_MSG, "reply_markup": {"inline_keyboard": [[KEY, KEY]]}, "chat_id": 5}),
    ("telegram", "sendMessage", {"text": "plain <not html>"}),
    ("telegram", "sendPhoto", TG_PHOTO),
    ("telegram", "sendDocument", {"document": f"{URL}/a.pdf"}),
    ("telegram", "sendMediaGroup", TG_GROUP),
    (
        "telegram",
        "sendMediaGroup",
        {"media": [{"type": "photo", "media": f"{URL}/a"}, {"type": "video", "media": f"{URL}/b"}]},
    ),
    ("telegram", "sendMediaGroup", {"media": [{"type": "audio", "media": f"{URL}/a"}] * 10}),
    (
        "telegram",
        "sendMessage",
        {**TG_MSG, "reply_markup": {"inline_keyboard": [[{"text": "k", "callback_data": "x" * 64}]]}},
    ),
    ("messenger", "messages", FB_TEXT),
    (
        "messenger",
        "messages",
        {**FB_TEXT, "recipient": {"id": "1"}, "messaging_type": "MESSAGE_TAG", "tag": "ACCOUNT_UPDATE"},
    ),
    ("messenger", "messages", FB_BTN_TPL),
    ("messenger", "messages", FB_GENERIC),
    ("messenger", "messages", FB_IMAGE),
    ("email", "smtp", EMAIL),
    ("slack", "POST", SLACK),
    ("slack", "POST", {"text": "only text"}),
    ("discord", "POST", DISCORD),
    ("discord", "POST", {"embeds": [{"image": {"url": f"{URL}/a.jpg"}}]}),
    ("json", "POST", JSON_BODY),
]


@pytest.mark.parametrize(("fmt", "method", "body"), VALID)
def test_validator_accepts(fmt: str, method: str, body: dict[str, Any]) -> None:
    validate_call(fmt, ProviderCall(method, body))


def _many(count: int, item: Any) -> list[Any]:
    return [copy.deepcopy(item) for _ in range(count)]


# (format, method, base body, path, value, rule)
VIOLATIONS: list[tuple[str, str, dict[str, Any], str, Any, str]] = [
    # telegram
    ("telegram", "sendSticker", TG_MSG, "text", "hi", "telegram.method"),
    ("telegram", "sendMessage", TG_MSG, "text", DELETE, "telegram.text.required"),
    ("telegram", "sendMessage", TG_MSG, "text", 5, "telegram.text.type"),
    ("telegram", "sendMessage", TG_MSG, "text", "", "telegram.text.empty"),
    ("telegram", "sendMessage", TG_MSG, "text", "<b> </b>", "telegram.text.empty"),
    ("telegram", "sendMessage", TG_MSG, "text", "x" * 4097, "telegram.text.length"),
    ("telegram", "sendMessage", TG_MSG, "text", "&lt;" * 4097, "telegram.text.length"),
    ("telegram", "sendMessage", TG_MSG, "text", "😀" * 2049, "telegram.text.length"),
    ("telegram", "sendMessage", TG_MSG, "text", "<div>x</div>", "telegram.text.html"),
    ("telegram", "sendMessage", TG_MSG, "text", "a < b", "telegram.text.html"),
    ("telegram", "sendMessage", TG_MSG, "text", "<b><i>x</b></i>", "telegram.text.html"),
    ("telegram", "sendMessage", TG_MSG, "text", "&nbsp;", "telegram.text.html"),
    ("telegram", "sendMessage", TG_MSG, "parse_mode", "MarkdownV2", "telegram.parse_mode"),
    ("telegram", "sendMessage", TG_MSG, "reply_markups", {}, "telegram.body.keys"),
    ("telegram", "sendMessage", TG_MSG, "chat_id", 1.5, "telegram.chat_id"),
    (
        "telegram",
        "sendMessage",
        TG_MSG,
        "link_preview_options",
        {"disabled": True},
        "telegram.link_preview_options",
    ),
    (
        "telegram",
        "sendMessage",
        TG_MSG,
        "link_preview_options",
        {"is_disabled": "yes"},
        "telegram.link_preview_options",
    ),
    ("telegram", "sendMessage", TG_MSG, "reply_markup", [], "telegram.keyboard.shape"),
    ("telegram", "sendMessage", TG_MSG, "reply_markup", {"keyboard": [[KEY]]}, "telegram.keyboard.shape"),
    ("telegram", "sendMessage", TG_MSG, "reply_markup", {"inline_keyboard": []}, "telegram.keyboard.shape"),
    ("telegram", "sendMessage", TG_MSG, "reply_markup", {"inline_keyboard": [[]]}, "telegram.keyboard.shape"),
    (
        "telegram",
        "sendMessage",
        TG_MSG,
        "reply_markup",
        {"inline_keyboard": [KEY]},
        "telegram.keyboard.shape",
    ),
    (
        "telegram",
        "sendMessage",
        TG_MSG,
        "reply_markup",
        {"inline_keyboard": [[{"text": "k"}]]},
        "telegram.keyboard.shape",
    ),
    (
        "telegram",
        "sendMessage",
        TG_MSG,
        "reply_markup",
        {"inline_keyboard": [[{**KEY, "callback_data": "x"}]]},
        "telegram.keyboard.shape",
    ),
    (
        "telegram",
        "sendMessage",
        TG_MSG,
        "reply_markup",
        {"inline_keyboard": [[{**KEY, "text": ""}]]},
        "telegram.button.text",
    ),
    (
        "telegram",
        "sendMessage",
        TG_MSG,
        "reply_markup",
        {"inline_keyboard": [[{**KEY, "text": "x" * 65}]]},
        "telegram.button.text",
    ),
    (
        "telegram",
        "sendMessage",
        TG_MSG,
        "reply_markup",
        {"inline_keyboard": [[{**KEY, "url": "javascript:x"}]]},
        "telegram.button.url",
    ),
    (
        "telegram",
        "sendMessage",
        TG_MSG,
        "reply_markup",
        {"inline_keyboard": [[{**KEY, "url": "/relative"}]]},
        "telegram.button.url",
    ),
    (
        "telegram",
        "sendMessage",
        TG_MSG,
        "reply_markup",
        {"inline_keyboard": [[{"text": "k", "callback_data": "é" * 33}]]},
        "telegram.button.callback_data",
    ),
    (
        "telegram",
        "sendMessage",
        TG_MSG,
        "reply_markup",
        {"inline_keyboard": [_many(9, KEY)]},
        "telegram.keyboard.row",
    ),
    (
        "telegram",
        "sendMessage",
        TG_MSG,
        "reply_markup",
        {"inline_keyboard": _many(101, [KEY])},
        "telegram.keyboard.size",
    ),
    ("telegram", "sendPhoto", TG_PHOTO, "photo", DELETE, "telegram.media.required"),
    ("telegram", "sendPhoto", TG_PHOTO, "photo", "ftp://example.com/a.jpg", "telegram.media.url"),
    ("telegram", "sendPhoto", TG_PHOTO, "video", f"{URL}/v.mp4", "telegram.body.keys"),
    ("telegram", "sendPhoto", TG_PHOTO, "caption", "x" * 1025, "telegram.caption.length"),
    ("telegram", "sendPhoto", TG_PHOTO, "caption", "<p>x</p>", "telegram.caption.html"),
    ("telegram", "sendPhoto", TG_PHOTO, "parse_mode", "Markdown", "telegram.parse_mode"),
    ("telegram", "sendVideo", {"video": f"{URL}/v.mp4"}, "text", "x", "telegram.body.keys"),
    (
        "telegram",
        "sendMediaGroup",
        TG_GROUP,
        "media",
        [{"type": "photo", "media": f"{URL}/a"}],
        "telegram.media_group.size",
    ),
    (
        "telegram",
        "sendMediaGroup",
        TG_GROUP,
        "media",
        _many(11, {"type": "photo", "media": f"{URL}/a"}),
        "telegram.media_group.size",
    ),
    ("telegram", "sendMediaGroup", TG_GROUP, "media", DELETE, "telegram.media_group.size"),
    (
        "telegram",
        "sendMediaGroup",
        TG_GROUP,
        "reply_markup",
        {"inline_keyboard": [[KEY]]},
        "telegram.media_group.reply_markup",
    ),
    ("telegram", "sendMediaGroup", TG_GROUP, "media.1.type", "audio", "telegram.media_group.mix"),
    ("telegram", "sendMediaGroup", TG_GROUP, "media.1.type", "document", "telegram.media_group.mix"),
    ("telegram", "sendMediaGroup", TG_GROUP, "media.1.type", "sticker", "telegram.media_group.item"),
    ("telegram", "sendMediaGroup", TG_GROUP, "media.1.media", "not a url", "telegram.media.url"),
    ("telegram", "sendMediaGroup", TG_GROUP, "media.0.caption", "x" * 1025, "telegram.caption.length"),
    ("telegram", "sendMediaGroup", TG_GROUP, "media.0.reply_markup", {}, "telegram.media_group.item"),
    # messenger
    ("messenger", "send", FB_TEXT, "message.text", "hi", "messenger.method"),
    ("messenger", "messages", FB_TEXT, "messaging_type", DELETE, "messenger.messaging_type"),
    ("messenger", "messages", FB_TEXT, "messaging_type", "PROMO", "messenger.messaging_type"),
    ("messenger", "messages", FB_TEXT, "messaging_type", "MESSAGE_TAG", "messenger.tag"),
    ("messenger", "messages", FB_TEXT, "tag", "ACCOUNT_UPDATE", "messenger.tag"),
    ("messenger", "messages", FB_TEXT, "extra", 1, "messenger.body.keys"),
    ("messenger", "messages", FB_TEXT, "message", DELETE, "messenger.message"),
    (
        "messenger",
        "messages",
        FB_TEXT,
        "message.attachment",
        FB_IMAGE["message"]["attachment"],
        "messenger.message",
    ),
    ("messenger", "messages", FB_TEXT, "message.text", DELETE, "messenger.message"),
    ("messenger", "messages", FB_TEXT, "message.text", "", "messenger.text"),
    ("messenger", "messages", FB_TEXT, "message.text", "   ", "messenger.text"),
    ("messenger", "messages", FB_TEXT, "message.text", "x" * 2001, "messenger.text"),
    ("messenger", "messages", FB_TEXT, "message.text", "😀" * 1001, "messenger.text"),
    ("messenger", "messages", FB_TEXT, "message.title", "x", "messenger.message.keys"),
    (
        "messenger",
        "messages",
        FB_TEXT,
        "message.quick_replies",
        _many(14, {"content_type": "text", "title": "q", "payload": "p"}),
        "messenger.quick_replies",
    ),
    (
        "messenger",
        "messages",
        FB_TEXT,
        "message.quick_replies",
        [{"content_type": "text", "title": "q" * 21, "payload": "p"}],
        "messenger.quick_replies",
    ),
    ("messenger", "messages", FB_IMAGE, "message.attachment.type", "sticker", "messenger.attachment"),
    (
        "messenger",
        "messages",
        FB_IMAGE,
        "message.attachment.payload.url",
        "file:///etc/passwd",
        "messenger.attachment.url",
    ),
    ("messenger", "messages", FB_IMAGE, "message.attachment.payload.url", DELETE, "messenger.attachment.url"),
    (
        "messenger",
        "messages",
        FB_IMAGE,
        "message.attachment.payload.is_reusable",
        "yes",
        "messenger.attachment",
    ),
    (
        "messenger",
        "messages",
        FB_BTN_TPL,
        "message.attachment.payload.text",
        "x" * 641,
        "messenger.button_template.text",
    ),
    (
        "messenger",
        "messages",
        FB_BTN_TPL,
        "message.attachment.payload.text",
        "",
        "messenger.button_template.text",
    ),
    (
        "messenger",
        "messages",
        FB_BTN_TPL,
        "message.attachment.payload.buttons",
        [],
        "messenger.button_template.buttons",
    ),
    (
        "messenger",
        "messages",
        FB_BTN_TPL,
        "message.attachment.payload.buttons",
        _many(4, FB_BUTTON),
        "messenger.button_template.buttons",
    ),
    (
        "messenger",
        "messages",
        FB_BTN_TPL,
        "message.attachment.payload.buttons.0.title",
        "x" * 21,
        "messenger.button.title",
    ),
    (
        "messenger",
        "messages",
        FB_BTN_TPL,
        "message.attachment.payload.buttons.0.title",
        DELETE,
        "messenger.button.title",
    ),
    (
        "messenger",
        "messages",
        FB_BTN_TPL,
        "message.attachment.payload.buttons.0.url",
        "javascript:x",
        "messenger.button.url",
    ),
    (
        "messenger",
        "messages",
        FB_BTN_TPL,
        "message.attachment.payload.buttons.0.type",
        "account_link",
        "messenger.button",
    ),
    (
        "messenger",
        "messages",
        FB_BTN_TPL,
        "message.attachment.payload.template_type",
        "media",
        "messenger.attachment",
    ),
    (
        "messenger",
        "messages",
        FB_GENERIC,
        "message.attachment.payload.elements",
        _many(11, {"title": "t"}),
        "messenger.generic.elements",
    ),
    (
        "messenger",
        "messages",
        FB_GENERIC,
        "message.attachment.payload.elements",
        [],
        "messenger.generic.elements",
    ),
    (
        "messenger",
        "messages",
        FB_GENERIC,
        "message.attachment.payload.elements.0.title",
        DELETE,
        "messenger.generic.title",
    ),
    (
        "messenger",
        "messages",
        FB_GENERIC,
        "message.attachment.payload.elements.0.title",
        "",
        "messenger.generic.title",
    ),
    (
        "messenger",
        "messages",
        FB_GENERIC,
        "message.attachment.payload.elements.0.title",
        "x" * 81,
        "messenger.generic.title",
    ),
    (
        "messenger",
        "messages",
        FB_GENERIC,
        "message.attachment.payload.elements.0.subtitle",
        "x" * 81,
        "messenger.generic.subtitle",
    ),
    (
        "messenger",
        "messages",
        FB_GENERIC,
        "message.attachment.payload.elements.0.image_url",
        "nope",
        "messenger.generic.image_url",
    ),
    (
        "messenger",
        "messages",
        FB_GENERIC,
        "message.attachment.payload.elements.0.default_action",
        {"type": "postback", "url": f"{URL}/x"},
        "messenger.generic.default_action",
    ),
    (
        "messenger",
        "messages",
        FB_GENERIC,
        "message.attachment.payload.elements.0.default_action",
        {"type": "web_url", "url": f"{URL}/x", "title": "t"},
        "messenger.generic.default_action",
    ),
    (
        "messenger",
        "messages",
        FB_GENERIC,
        "message.attachment.payload.elements.0.buttons",
        _many(4, FB_BUTTON),
        "messenger.generic.buttons",
    ),
    (
        "messenger",
        "messages",
        FB_GENERIC,
        "message.attachment.payload.elements.0.buttons.0.title",
        "x" * 21,
        "messenger.button.title",
    ),
    (
        "messenger",
        "messages",
        FB_GENERIC,
        "message.attachment.payload.elements.0.item_url",
        f"{URL}/x",
        "messenger.generic.keys",
    ),
    # email
    ("email", "send", EMAIL, "subject", "S", "email.method"),
    ("email", "smtp", EMAIL, "subject", DELETE, "email.subject"),
    ("email", "smtp", EMAIL, "subject", "", "email.subject"),
    ("email", "smtp", EMAIL, "subject", "  ", "email.subject"),
    ("email", "smtp", EMAIL, "subject", "a\nb", "email.subject.newline"),
    ("email", "smtp", EMAIL, "subject", "a\rb", "email.subject.newline"),
    ("email", "smtp", EMAIL, "subject", "x" * 999, "email.subject"),
    ("email", "smtp", EMAIL, "html", DELETE, "email.html"),
    ("email", "smtp", EMAIL, "html", " ", "email.html"),
    ("email", "smtp", EMAIL, "html", "<p>x</p><script>alert(1)</script>", "email.html.unsafe"),
    ("email", "smtp", EMAIL, "html", '<img src="x" onerror="alert(1)">', "email.html.unsafe"),
    ("email", "smtp", EMAIL, "html", '<a href="javascript:alert(1)">x</a>', "email.html.unsafe"),
    ("email", "smtp", EMAIL, "text", DELETE, "email.text"),
    ("email", "smtp", EMAIL, "text", "", "email.text"),
    ("email", "smtp", EMAIL, "from", "me@example.com", "email.body.keys"),
    # slack
    ("slack", "GET", SLACK, "text", "x", "slack.method"),
    ("slack", "POST", SLACK, "text", "", "slack.text"),
    ("slack", "POST", SLACK, "text", "x" * 40_001, "slack.text"),
    ("slack", "POST", SLACK, "attachments", [], "slack.body.keys"),
    ("slack", "POST", SLACK, "blocks", _many(51, SECTION), "slack.blocks.count"),
    ("slack", "POST", SLACK, "blocks.0.text.text", "x" * 3001, "slack.section.text"),
    ("slack", "POST", SLACK, "blocks.0.text.text", "", "slack.section.text"),
    ("slack", "POST", SLACK, "blocks.0.text.type", "markdown", "slack.section.text"),
    ("slack", "POST", SLACK, "blocks.0.text", DELETE, "slack.section"),
    (
        "slack",
        "POST",
        SLACK,
        "blocks.0.fields",
        _many(11, {"type": "mrkdwn", "text": "f"}),
        "slack.section.fields",
    ),
    (
        "slack",
        "POST",
        SLACK,
        "blocks.0.accessory",
        {"type": "image", "image_url": f"{URL}/a.jpg"},
        "slack.image.alt_text",
    ),
    (
        "slack",
        "POST",
        SLACK,
        "blocks.0",
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}},
        "slack.header",
    ),
    (
        "slack",
        "POST",
        SLACK,
        "blocks.0",
        {"type": "header", "text": {"type": "mrkdwn", "text": "h"}},
        "slack.header",
    ),
    (
        "slack",
        "POST",
        SLACK,
        "blocks.0",
        {"type": "image", "image_url": f"{URL}/a.jpg"},
        "slack.image.alt_text",
    ),
    (
        "slack",
        "POST",
        SLACK,
        "blocks.0",
        {"type": "image", "image_url": f"{URL}/a.jpg", "alt_text": "a" * 2001},
        "slack.image.alt_text",
    ),
    (
        "slack",
        "POST",
        SLACK,
        "blocks.0",
        {"type": "image", "image_url": "data:image/png;base64,xx", "alt_text": "a"},
        "slack.image.url",
    ),
    (
        "slack",
        "POST",
        SLACK,
        "blocks.0",
        {"type": "image", "image_url": f"{URL}/" + "a" * 3000, "alt_text": "a"},
        "slack.image.url",
    ),
    ("slack", "POST", SLACK, "blocks.0", {"type": "actions", "elements": []}, "slack.actions"),
    (
        "slack",
        "POST",
        SLACK,
        "blocks.0",
        {"type": "actions", "elements": _many(26, SLACK_BUTTON)},
        "slack.actions",
    ),
    (
        "slack",
        "POST",
        SLACK,
        "blocks.0",
        {"type": "actions", "elements": [{**SLACK_BUTTON, "text": {"type": "plain_text", "text": "b" * 76}}]},
        "slack.button.text",
    ),
    (
        "slack",
        "POST",
        SLACK,
        "blocks.0",
        {"type": "actions", "elements": [{**SLACK_BUTTON, "url": "slack://x"}]},
        "slack.button.url",
    ),
    (
        "slack",
        "POST",
        SLACK,
        "blocks.0",
        {"type": "actions", "elements": [{**SLACK_BUTTON, "type": "link"}]},
        "slack.button",
    ),
    ("slack", "POST", SLACK, "blocks.0", {"type": "video"}, "slack.block"),
    ("slack", "POST", SLACK, "blocks.0", "section", "slack.block"),
    # discord
    ("discord", "PUT", DISCORD, "content", "x", "discord.method"),
    ("discord", "POST", DISCORD, "content", "x" * 2001, "discord.content"),
    ("discord", "POST", {"content": "x"}, "content", " ", "discord.empty"),
    ("discord", "POST", DISCORD, "embeds", _many(11, {"title": "t"}), "discord.embeds.count"),
    ("discord", "POST", DISCORD, "embeds.0.title", "t" * 257, "discord.embed.title"),
    ("discord", "POST", DISCORD, "embeds.0.description", "d" * 4097, "discord.embed.description"),
    (
        "discord",
        "POST",
        DISCORD,
        "embeds",
        _many(2, {"title": "t" * 200, "description": "d" * 2901}),
        "discord.embeds.total",
    ),
    ("discord", "POST", DISCORD, "embeds.0.image", {"url": "attachment"}, "discord.url"),
    ("discord", "POST", DISCORD, "embeds.0.url", "example.com", "discord.url"),
    (
        "discord",
        "POST",
        DISCORD,
        "embeds.0.fields",
        _many(26, {"name": "n", "value": "v"}),
        "discord.embed.fields",
    ),
    (
        "discord",
        "POST",
        DISCORD,
        "embeds.0.fields",
        [{"name": "n", "value": "v" * 1025}],
        "discord.embed.fields",
    ),
    ("discord", "POST", DISCORD, "embeds.0.footer", {"text": "f" * 2049}, "discord.embed.footer"),
    ("discord", "POST", DISCORD, "embeds.0.author", {"name": "a" * 257}, "discord.embed.author"),
    ("discord", "POST", DISCORD, "embeds.0", {}, "discord.embed"),
    ("discord", "POST", DISCORD, "embeds.0.colour", 5, "discord.embed"),
    ("discord", "POST", DISCORD, "components", [], "discord.body.keys"),
    ("discord", "POST", DISCORD, "allowed_mentions", {"parse": ["here"]}, "discord.allowed_mentions"),
    ("discord", "POST", DISCORD, "username", "u" * 81, "discord.username"),
    # json
    ("json", "PUT", JSON_BODY, "format", "feedcast.v1", "json.method"),
    ("json", "POST", JSON_BODY, "format", "feedcast.v2", "json.format"),
    ("json", "POST", JSON_BODY, "extra", 1, "json.body.keys"),
    ("json", "POST", JSON_BODY, "items", DELETE, "json.items"),
    ("json", "POST", JSON_BODY, "items", [1], "json.items"),
    ("json", "POST", JSON_BODY, "modules.0.kind", "poll", "json.module"),
    ("json", "POST", JSON_BODY, "modules.0.data", DELETE, "json.module"),
    ("json", "POST", JSON_BODY, "modules.0.buttons", [{"title": "t"}], "json.button"),
    ("json", "POST", JSON_BODY, "modules.0.cards", [{"title": "t"}], "json.card"),
    ("json", "POST", JSON_BODY, "modules.0.data", float("nan"), "json.serialisable"),
]


@pytest.mark.parametrize(
    ("fmt", "method", "base", "path", "value", "rule"),
    VIOLATIONS,
    ids=[f"{v[5]}:{v[3]}" for v in VIOLATIONS],
)
def test_validator_names_the_violated_rule(
    fmt: str, method: str, base: dict[str, Any], path: str, value: Any, rule: str
) -> None:
    body = patch(base, path, value)
    with pytest.raises(PayloadError) as err:
        validate_call(fmt, ProviderCall(method, body))
    assert err.value.rule == rule, str(err.value)
    assert str(err.value).startswith(rule + ": ")


def test_every_base_of_the_violation_table_is_valid() -> None:
    for fmt, method, base in {(v[0], v[1], id(v[2])): (v[0], v[1], v[2]) for v in VIOLATIONS}.values():
        if method in {"sendSticker", "send", "GET", "PUT"}:
            continue
        validate_call(fmt, ProviderCall(method, base))


def test_validator_limits_are_inclusive() -> None:
    validate_call("telegram", ProviderCall("sendMessage", {"text": "😀" * 2048, "parse_mode": "HTML"}))
    validate_call(
        "telegram",
        ProviderCall("sendPhoto", {"photo": f"{URL}/a", "caption": "x" * 1024, "parse_mode": "HTML"}),
    )
    validate_call("messenger", ProviderCall("messages", patch(FB_TEXT, "message.text", "x" * 2000)))
    validate_call("email", ProviderCall("smtp", {**EMAIL, "subject": "s" * 998}))
    validate_call("slack", ProviderCall("POST", {"text": "x", "blocks": _many(50, SECTION)}))
    validate_call(
        "discord", ProviderCall("POST", {"content": "x" * 2000, "embeds": _many(10, {"title": "t"})})
    )
    validate_call(
        "discord",
        ProviderCall("POST", {"embeds": _many(2, {"title": "t" * 100, "description": "d" * 2900})}),
    )


# =========================================================================== properties

WORDS = [
    "lorem",
    "ipsum",
    "Prix",
    "naïve",
    "e\u0301te\u0301",  # combining acute accents
    "a\u0308\u0301",  # stacked combining marks
    "😀",
    "👩\u200d💻",  # ZWJ sequence
    "👍🏽",  # skin tone
    "🇫🇷",  # flag (regional indicators)
    "❤\ufe0f",
    "مرحبا",
    "بالعالم",
    "السلام",
    "漢字",
    "日本語のテキスト",
    "中文内容很长",
    "한국어",
    "Ελληνικά",
    "&",
    "<",
    ">",
    '"',
    "*",
    "_",
    "[x]",
    "a-b",
    "https://example.com/path?q=1&r=2",
    "superlongwordwithoutanyspaces" * 3,
]
SEPARATORS = [" ", " ", " ", "\n", "\n\n", ", ", ". "]

plain_words = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), max_size=60).map(
    lambda parts: "".join(w + s for w, s in parts).strip()
)


@st.composite
def plain_texts(draw: st.DrawFn) -> str:
    """Plain text, often long enough to exceed every provider's limits (2000 to 6000)."""
    base = draw(plain_words)
    if draw(st.integers(0, 3)) == 0:
        size = draw(st.integers(1500, 7000))
        filler = " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=3, max_size=12)))
        base = (base + " " + (filler + " ") * (size // (len(filler) + 1) + 1)).strip()
    return base


def _tg_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def telegram_texts(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(st.tuples(plain_texts(), st.sampled_from(["", "b", "i", "a", "code", "s"])), max_size=4)
    )
    out = []
    for value, tag in parts:
        body = _tg_escape(value)
        if not tag or not body.strip():
            out.append(body)
        elif tag == "a":
            out.append(f'<a href="https://example.com/?a=1&amp;b=2">{body}</a>')
        else:
            out.append(f"<{tag}>{body}</{tag}>")
    return " ".join(out)


@st.composite
def slack_texts(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(
            st.one_of(plain_texts().map(_tg_escape), st.just("<https://example.com/x|a *link* label>")),
            max_size=4,
        )
    )
    return " ".join(parts)


@st.composite
def discord_texts(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(
            st.one_of(
                plain_texts(),
                st.just("[a link label](<https://example.com/x>)"),
                st.just("```\ncode block\n```"),
            ),
            max_size=4,
        )
    )
    return " ".join(parts)


MARKUP: dict[str, Callable[[], st.SearchStrategy[str]]] = {
    "telegram": telegram_texts,
    "messenger": plain_texts,
    "slack": slack_texts,
    "discord": discord_texts,
}

MEDIA_URLS = [
    f"{URL}/photo.jpg",
    f"{URL}/big.jpg",
    f"{URL}/logo.svg",
    f"{URL}/clip.mp4",
    f"{URL}/clip.mov",
    f"{URL}/ep.mp3",
    f"{URL}/ep.ogg",
    f"{URL}/doc.pdf",
    f"{URL}/doc.docx",
    f"{URL}/download?id=3&x=<4>",
    "ftp://example.com/file.jpg",
]
SIZES = {f"{URL}/big.jpg": 9 * MB, f"{URL}/clip.mp4": 21 * MB, f"{URL}/doc.pdf": 26 * MB}

titles = st.one_of(plain_words, plain_texts()).map(lambda s: s[:300])
buttons = st.lists(
    st.builds(
        Button,
        titles,
        st.sampled_from([f"{URL}/b", f"{URL}/c?x=1&y=2", "javascript:alert(1)", "tg://resolve?domain=x"]),
    ),
    max_size=5,
)
card_lists = st.lists(
    st.builds(
        Card,
        titles.filter(lambda s: bool(s.strip())),
        st.none() | titles,
        st.none() | st.sampled_from(MEDIA_URLS),
        st.none() | st.sampled_from([f"{URL}/card", f"{URL}/card?a=1&b=2"]),
        st.lists(st.builds(Button, titles, st.just(f"{URL}/buy")), max_size=4).map(tuple),
    ),
    max_size=25,
)


def modules_for(fmt: str) -> st.SearchStrategy[list[Module]]:
    texts = MARKUP[fmt]()
    optional = st.none() | texts
    module = st.one_of(
        st.builds(Module, st.just("text"), optional, st.none(), buttons.map(tuple)),
        st.builds(
            Module,
            st.sampled_from(["image", "video", "audio", "file"]),
            optional,
            st.sampled_from(MEDIA_URLS),
            buttons.map(tuple),
        ),
        st.builds(Module, st.just("cards"), optional, st.none(), buttons.map(tuple), card_lists.map(tuple)),
    )
    return st.lists(module, max_size=8)


def _norm(value: str) -> str:
    return " ".join(value.split())


def _kept(original: str, outputs: Sequence[str]) -> bool:
    """``original`` appears whole in an output, or its start does, followed by the ellipsis."""
    wanted = _norm(original)
    if not wanted:
        return True
    head = wanted[: min(len(wanted), 4)]
    for out in map(_norm, outputs):
        start = out.find(head)
        while start != -1:
            rest = out[start:]
            if rest.startswith(wanted):
                return True
            same = 0
            while same < min(len(rest), len(wanted)) and rest[same] == wanted[same]:
                same += 1
            if rest[same:].lstrip().startswith(ELLIPSIS):
                return True
            start = out.find(head, start + 1)
    return False


def test_the_kept_check_itself() -> None:
    assert _kept("abc def ghi jkl mno", ["x abc def ghi jkl mno y"])
    assert _kept("abc def ghi jkl mno", ["abc def ghi…"])
    assert _kept("abc def ghi jkl mno", ["abc  def\nghi jkl mno"])
    assert not _kept("abc def ghi jkl mno", ["abc def ghi"])  # cut without the mark
    assert not _kept("abc def ghi jkl mno", ["abc def ghi jkx…"])  # changed
    assert not _kept("abc def ghi jkl mno", ["something else"])


def _texts(fmt: str, result: Sequence[ProviderCall]) -> list[str]:
    """Everything a reader sees in ``result``, as comparable text."""
    out: list[str] = []
    for call in result:
        body = call.body
        if fmt == "telegram":
            out += [telegram_visible_text(body[k]) for k in ("text", "caption") if k in body]
            out += [telegram_visible_text(m["caption"]) for m in body.get("media", []) if "caption" in m]
        elif fmt == "messenger":
            message = body["message"]
            if "text" in message:
                out.append(message["text"])
            else:
                payload = message["attachment"]["payload"]
                out += [payload["text"]] if "text" in payload else []
                out += [e["title"] for e in payload.get("elements", [])]
        elif fmt == "slack":
            for block in body["blocks"]:
                if "text" in block:
                    out.append(
                        block["text"]["text"].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
                    )
        elif fmt == "discord":
            out += [body.get("content", "")]
            out += [e.get(k, "") for e in body.get("embeds", []) for k in ("title", "description")]
    return out


def _originals(fmt: str, modules: Sequence[Module]) -> list[str]:
    out = []
    for module in modules:
        if module.text:
            value = telegram_visible_text(module.text) if fmt == "telegram" else module.text
            out.append(
                value.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
                if fmt == "slack"
                else value
            )
        out += [card.title for card in module.cards if fmt != "telegram" or card.title.strip()]
    return out


PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@pytest.mark.parametrize("fmt", ["telegram", "messenger", "slack", "discord"])
def test_property_every_call_is_valid_and_no_text_is_lost(fmt: str) -> None:
    @PROPERTY
    @given(modules=modules_for(fmt), sized=st.booleans())
    def check(modules: list[Module], sized: bool) -> None:
        result = calls_of(fmt, *modules, subject="Subject", sizes=SIZES if sized else None)
        seen = _texts(fmt, result)
        for original in _originals(fmt, modules):
            assert _kept(original, seen), f"lost: {original[:80]!r}"

    check()


@PROPERTY
@given(
    html=telegram_texts(),
    plain=st.none() | plain_texts(),
    subject=st.none() | plain_texts(),
    extra=modules_for("messenger"),
)
def test_property_email_is_valid(
    html: str, plain: str | None, subject: str | None, extra: list[Module]
) -> None:
    modules = [text(html or None), *([text(plain)] if plain else []), *(m for m in extra if m.kind != "text")]
    result = calls_of("email", *modules, subject=subject)
    if result:
        assert result[0].body["html"].count("<body>") == 1


@PROPERTY
@given(modules=modules_for("discord"), subject=st.none() | plain_texts())
def test_property_json_round_trips(modules: list[Module], subject: str | None) -> None:
    result = calls_of("json", *modules, subject=subject)
    if modules:
        body = json.loads(json.dumps(result[0].body))
        assert [m["text"] for m in body["modules"]] == [m.text for m in modules]


# =========================================================================== golden files

_LONG_TG = "<b>Breaking</b> " + _tg_escape(" ".join(["Ünïcødé 😀 العربية 漢字 text"] * 200))
GOLDEN_CASES: dict[str, Message] = {
    "telegram_single": Message(
        "telegram",
        (
            media(
                "image",
                f"{URL}/hero.jpg",
                '<b>Title &amp; more</b>\n\n<a href="https://example.com/a">Link</a>',
                MORE,
            ),
        ),
        subject="Title & more",
    ),
    "telegram_digest": Message(
        "telegram",
        (
            text("<b>Digest</b>"),
            *(
                text(
                    f'• <a href="https://example.com/{i}">Item {i}</a>\n{_tg_escape("Summary <" + str(i) + ">")}'
                )
                for i in range(5)
            ),
            text(_LONG_TG, MORE),
            media("video", f"{URL}/clip.webm", "A clip Telegram cannot fetch"),
        ),
    ),
    "telegram_carousel": Message("telegram", (cards(12, caption="<b>New arrivals</b>", buttons=(MORE,)),)),
    "messenger_single": Message("messenger", (media("image", f"{URL}/hero.jpg", "Title\n\nSummary", MORE),)),
    "messenger_digest": Message(
        "messenger",
        (
            text("Digest"),
            *(text(f"Item {i}: {words(60)}") for i in range(5)),
            media("file", f"{URL}/big.pdf", "Catalogue"),
        ),
    ),
    "messenger_carousel": Message("messenger", (cards(12, caption="New arrivals", buttons=(MORE,)),)),
    "email_single": Message(
        "email",
        (
            text(
                '<!DOCTYPE html><html><head><title>x</title></head><body><h1>Title</h1><p>Body <a href="https://example.com/a">link</a></p></body></html>'
            ),
            text("Title\n\nBody link (https://example.com/a)"),
        ),
        subject="Title\nwith a line break",
    ),
    "email_fragment": Message("email", (text("<p>Hello &amp; welcome</p>", MORE), cards(2))),
    "slack_single": Message(
        "slack",
        (media("image", f"{URL}/hero.jpg", "*<https://example.com/a|Title>*\nSummary &amp; more", MORE),),
        subject="Title",
    ),
    "slack_digest": Message(
        "slack", (*(text(f"*Item {i}*", Button("Open", f"{URL}/{i}")) for i in range(30)), cards(2))
    ),
    "discord_single": Message(
        "discord", (media("image", f"{URL}/hero.jpg", "**[Title](<https://example.com/a>)**\nSummary", MORE),)
    ),
    "discord_carousel": Message(
        "discord",
        (text("**New arrivals**"), cards(12, buttons=(MORE,)), media("audio", f"{URL}/ep.mp3", "Episode")),
    ),
    "json_single": Message(
        "json",
        (text(json.dumps({"item": {"key": "k1", "title": "Title", "url": f"{URL}/a"}})),),
        subject="Title",
        item_keys=("k1",),
    ),
    "json_modules": Message(
        "json", (media("image", f"{URL}/a.jpg", "caption", MORE), cards(1)), subject=None
    ),
}
GOLDEN_SIZES = {f"{URL}/big.pdf": 30 * MB}


def _dump(result: Sequence[ProviderCall]) -> str:
    return (
        json.dumps([{"method": c.method, "body": c.body} for c in result], ensure_ascii=False, indent=2)
        + "\n"
    )


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden(name: str) -> None:
    message = GOLDEN_CASES[name]
    result = provider_calls(message, media_sizes=GOLDEN_SIZES)
    for call in result:
        validate_call(message.format, call)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump(result), encoding="utf-8")
    assert path.exists(), f"missing golden file {path}: run with UPDATE_GOLDEN=1"
    assert _dump(result) == path.read_text(encoding="utf-8")


def test_golden_covers_every_format() -> None:
    assert {m.format for m in GOLDEN_CASES.values()} == set(FORMATS)


def test_messenger_cards_never_carry_only_a_title() -> None:
    """Graph refuses an element with nothing but a title (100/2018035): a linked card gets
    an "Open" button, a bare one a subtitle; the validator enforces the rule."""
    message = Message(
        format="messenger",
        modules=(Module(kind="cards", cards=(Card("Linked", url="https://x.example/a"), Card("Bare"))),),
    )
    [call] = provider_calls(message)
    linked, bare = call.body["message"]["attachment"]["payload"]["elements"]
    assert linked["buttons"] == [{"type": "web_url", "url": "https://x.example/a", "title": "Open"}]
    assert bare["subtitle"] == "Bare"
    validate_call("messenger", call)
    bare_only = copy.deepcopy(dict(call.body))
    bare_only["message"]["attachment"]["payload"]["elements"] = [{"title": "t"}]
    with pytest.raises(PayloadError, match="only a title"):
        validate_call("messenger", ProviderCall("messages", bare_only))
