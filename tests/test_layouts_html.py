"""layouts.html and layouts.text: sanitisers, the Telegram validator, truncation and packing.

Unit tests per rule, golden checks over every item of the corpus (feeds and
catalogues), and property tests (hypothesis) over HTML-ish text and hard Unicode.
"""

from __future__ import annotations

import re
from functools import cache

import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedcast.kernel.errors import FeedcastError, TelegramHtmlError
from layouts.html import (
    email_html,
    pack,
    plain_text,
    telegram_html,
    telegram_text_length,
    telegram_visible_text,
    truncate_telegram,
    truncate_text,
    validate_telegram_html,
)
from layouts.text import cut_point, is_grapheme_boundary, utf16_len
from sources.detect import parse_document
from sources.feeds import parse_feed
from tests.conftest import CORPUS, FIXTURES, SHARED_CORPUS, CorpusFile, load_manifest

BASE = "https://example.com/blog/post"
BAD = "Bad Request: can't parse entities: "

FAMILY = "👨‍👩‍👧‍👦"  # 7 code points, 11 UTF-16 units, one grapheme
FLAGS = "🇩🇪🇫🇷🇯🇵"
THUMB = "👍🏽"  # emoji + skin tone modifier
HEART = "❤️"  # + variation selector 16
ACCENTED = "e\u0301"  # e + combining acute


def rejects(text: str) -> str:
    with pytest.raises(TelegramHtmlError) as info:
        validate_telegram_html(text)
    return str(info.value)


# ------------------------------------------------------------------- the validator

ACCEPTED = [
    "",
    "plain text, with 'quotes' and \"double quotes\"",
    "a &lt; b &gt; c &amp; d &quot;e&quot;",
    "&#128512; &#x1F600; &#x1f600; &#65;",
    "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>i</ins><s>s</s><strike>s</strike><del>d</del>",
    '<a href="https://example.com/?a=1&amp;b=2">link</a>',
    "<a href='tg://user?id=123'>mention</a>",
    "<a href=https>unquoted name token</a>",
    '<a href="mailto:x@example.com"><b>bold</b> link</a>',
    "<code>inline</code> and <pre>block\n  indented</pre>",
    '<pre><code class="language-python">print(1)</code></pre>',
    "<blockquote>quote</blockquote><blockquote expandable>long quote</blockquote>",
    '<blockquote expandable="">quote</blockquote>',
    '<span class="tg-spoiler">spoiler</span> <tg-spoiler>spoiler</tg-spoiler>',
    '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
    "<B>upper case tags</B>",
    "<b >space before the end</b >",
    "<b><i><u><s>deep</s></u></i></b>",
    "<blockquote><b>bold</b><pre>code</pre></blockquote>",
    "<b></b>",
    f"{FAMILY}{FLAGS}{THUMB}{HEART}{ACCENTED} مرحبا 日本語",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_validator_accepts(text: str) -> None:
    validate_telegram_html(text)


REJECTED = [
    ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
    ("é<div>x</div>", 'Unsupported start tag "div" at byte offset 2'),  # bytes, not characters
    ("👍 <p>", 'Unsupported start tag "p" at byte offset 5'),
    ("<br/>", 'Unsupported start tag "br/" at byte offset 0'),
    ("<b/>", 'Unsupported start tag "b/" at byte offset 0'),
    ("<!-- comment -->", 'Unsupported start tag "!--" at byte offset 0'),
    ("<a>x</a>", 'Tag "a" must have attribute "href" at byte offset 0'),
    ('<a href="">x</a>', 'Tag "a" must have attribute "href" at byte offset 0'),
    ("<a href>x</a>", 'Expected equal sign in declaration of an attribute of the tag "a" at byte offset 0'),
    ('<a href=x"y>z</a>', "Unexpected end of name token at byte offset 8"),
    ('<b class="x">y</b>', 'Unsupported attribute "class" in the tag "b" at byte offset 0'),
    (
        '<a href="https://x.com" title="t">y</a>',
        'Unsupported attribute "title" in the tag "a" at byte offset 0',
    ),
    ('<a HREF="https://x.com">y</a>', 'Unsupported attribute "HREF" in the tag "a" at byte offset 0'),
    ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    (
        '<code class="python">x</code>',
        'Unsupported value of attribute "class" in the tag "code" at byte offset 0',
    ),
    ('<tg-emoji emoji-id="abc">x</tg-emoji>', "Invalid custom emoji identifier specified"),
    ("<tg-emoji>x</tg-emoji>", "Invalid custom emoji identifier specified"),
    ("<b ", 'Empty attribute name in the tag "b" at byte offset 0'),
    ("<b><i></b></i>", 'Unmatched end tag at byte offset 6, expected "</i>", found "</b>"'),
    ("<b>x</>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</>"'),
    ("<b>x", "Can't find end tag corresponding to start tag b"),
    ("</b>", "Unexpected end tag at byte offset 0"),
    ("<b>x</b", "Unclosed end tag at byte offset 4"),
    ("<b>x</b y>", "Unclosed end tag at byte offset 4"),
    ("a<b", "Unclosed start tag at byte offset 1"),
    ("<a href='https://x.com>y</a>", "Unclosed start tag at byte offset 0"),
    ("a < b", 'Unsupported start tag "" at byte offset 2'),
    ("a > b", 'Unescaped ">" at byte offset 2'),
    ("AT&T", 'Unescaped "&" at byte offset 2'),
    ("&amp", 'Unescaped "&" at byte offset 0'),  # Telegram itself tolerates the missing ';'
    ("&#X41;", 'Unescaped "&" at byte offset 0'),  # only a lower-case x makes it hexadecimal
    ("x &nbsp;", 'Unsupported HTML entity "&nbsp;" at byte offset 2'),
    ("&hellip;", 'Unsupported HTML entity "&hellip;" at byte offset 0'),
    ("&LT;", 'Unsupported HTML entity "&LT;" at byte offset 0'),
    ("&#0;", 'Unsupported HTML entity "&#0;" at byte offset 0'),
    ("&#x110000;", 'Unsupported HTML entity "&#x110000;" at byte offset 0'),
    ("&#12345678;", 'Unsupported HTML entity "&#12345678;" at byte offset 0'),
    (
        "&#xD83D;&#xDE00;",
        "Text contains invalid Unicode characters after decoding HTML entities, "
        "check for unmatched surrogate code units",
    ),
    ("<pre><b>x</b></pre>", 'Unsupported start tag "b" inside "pre" at byte offset 5'),
    ("<pre>x<code>y</code></pre>", 'Unsupported start tag "code" inside "pre" at byte offset 6'),
    (
        "<pre><code>a</code><code>b</code></pre>",
        'Unsupported start tag "code" inside "pre" at byte offset 19',
    ),
    ("<code><i>x</i></code>", 'Unsupported start tag "i" inside "code" at byte offset 6'),
    (
        '<a href="https://x"><a href="https://y">x</a></a>',
        'Unsupported start tag "a" inside "a" at byte offset 20',
    ),
    (
        "<blockquote><blockquote>x</blockquote></blockquote>",
        'Unsupported start tag "blockquote" inside "blockquote" at byte offset 12',
    ),
]


@pytest.mark.parametrize(("text", "message"), REJECTED)
def test_validator_rejects_with_telegram_wording(text: str, message: str) -> None:
    assert rejects(text) == BAD + message


def test_validator_error_carries_the_offset_and_belongs_to_the_tree() -> None:
    with pytest.raises(TelegramHtmlError) as info:
        validate_telegram_html("ok <div>")
    assert info.value.offset == 3
    assert info.value.description == str(info.value)
    assert isinstance(info.value, FeedcastError)
    assert isinstance(info.value, ValueError)


def test_validator_rejects_text_that_is_not_utf8() -> None:
    assert rejects("x\ud800") == "Bad Request: strings must be encoded in UTF-8"


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("", 0),
        ("a&lt;b", 3),
        ("<b>é</b>", 1),
        ("😀", 2),  # outside the BMP: a surrogate pair
        ("&#x1F600;", 2),
        (FAMILY, 11),
        (FLAGS, 12),
        ('<a href="https://example.com/a/very/long/url">x</a>', 1),
        ("<pre>a\n b</pre>", 4),
    ],
)
def test_telegram_text_length_counts_utf16_after_parsing(text: str, length: int) -> None:
    assert telegram_text_length(text) == length


def test_visible_text_decodes_entities() -> None:
    assert telegram_visible_text("<b>a &amp; b</b> &lt;3 &#65;") == "a & b <3 A"


# ----------------------------------------------------------------- telegram_html


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        # unsupported tags unwrapped, text kept
        ("<div><span class='x'>one</span> <font>two</font></div>", "one two"),
        # blocks become line breaks, paragraphs a blank line
        ("<p>a</p><p>b</p>", "a\n\nb"),
        ("<div>a</div><div>b</div>", "a\nb"),
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<h2>Title</h2><p>text</p>", "<b>Title</b>\n\ntext"),
        ("<h3><b>Bold</b> title</h3>", "<b>Bold title</b>"),
        ("<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>", "a | b\n1 | 2"),
        # lists
        ("<ul><li>one</li><li><p>two</p></li></ul>", "• one\n• two"),
        ("<ol start='3'><li>c</li><li>d</li></ol>", "3. c\n4. d"),
        ("<ul><li>a<ul><li>b</li></ul></li></ul>", "• a\n  • b"),
        ("<p>intro</p><ul><li>x</li></ul><p>outro</p>", "intro\n\n• x\n\noutro"),
        # formatting kept, normalised
        (
            "<strong>s</strong> <em>e</em> <ins>i</ins> <del>d</del> <strike>k</strike>",
            "<b>s</b> <i>e</i> <u>i</u> <s>d</s> <s>k</s>",
        ),
        ("<b>a <b>b</b></b>", "<b>a b</b>"),
        ("<b><i>x</b>y</i>", "<b><i>x</i></b>y"),  # mis-nested: repaired, properly nested
        ("<b></b>x<i> </i>y", "x y"),  # empty elements vanish
        ('<span class="tg-spoiler">s</span>', "<tg-spoiler>s</tg-spoiler>"),
        (
            '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
            '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
        ),
        ('<tg-emoji emoji-id="nope">👍</tg-emoji>', "👍"),
        # escaping and entities: only &lt; &gt; &amp; &quot; come out
        ("a < b & c > d", "a &lt; b &amp; c &gt; d"),
        ("x&nbsp;y&hellip;&eacute;&#8364;&quot;&apos;&NewLine;z", "x y…é€\"' z"),
        ("&amp;lt;", "&amp;lt;"),
        # whitespace
        ("  <p>  a \n\t b  </p>  ", "a b"),
        ("<b>a </b>b", "<b>a</b> b"),
        ("<p>a</p><p></p><p>&nbsp;</p><br><br><br><p>b</p>", "a\n\nb"),
        ("a<br><br><br><br>b", "a\n\nb"),
        # removed with their content
        ("<script>alert(1)</script><style>p{}</style><noscript>js?</noscript>ok", "ok"),
        ("<form>f<input value='v'><button>b</button><select><option>o</select></form>", "f"),
        ("<iframe src='x'>frame</iframe><object>o</object><svg><text>t</text></svg>ok", "ok"),
        # images dropped
        ('<p>a<img src="x.png" alt="pic">b</p>', "ab"),
        ('<a href="/x"><img src="x.png"></a>', ""),
        # code and pre: no formatting inside, whitespace of pre kept
        ("<code>a <i>b</i>  c</code>", "<code>a b c</code>"),
        ("x<code> y </code>z", "x <code>y</code> z"),
        ("<pre>  a\n    <b>b</b>\n</pre>", "<pre>  a\n    b</pre>"),
        ("<pre>\n\nfirst</pre>", "<pre>first</pre>"),
        (
            '<pre><code class="language-python">if a &lt; b:\n    pass</code></pre>',
            '<pre><code class="language-python">if a &lt; b:\n    pass</code></pre>',
        ),
        ("<pre>a<br>b</pre>", "<pre>a\nb</pre>"),
        ("<b>bold <pre>pre</pre></b>", "<b>bold\n\npre</b>"),  # no pre inside formatting
        # blockquote
        (
            "<blockquote><p>q1</p><p>q2</p></blockquote><p>after</p>",
            "<blockquote>q1\n\nq2</blockquote>\n\nafter",
        ),
        ("<blockquote>a<blockquote>b</blockquote></blockquote>", "<blockquote>a\n\nb</blockquote>"),
        ("<blockquote expandable>long</blockquote>", "<blockquote expandable>long</blockquote>"),
        ("<b><blockquote>q</blockquote></b>", "<b>q</b>"),
        # broken markup
        ("<b>unclosed", "<b>unclosed</b>"),
        ("<p>a<p>b", "a\n\nb"),
        ("</div>stray</b>", "stray"),
        ("<a href='https://x.com'", ""),
        ("<<b>>", "&lt;<b>&gt;</b>"),
        # nothing
        ("", ""),
        ("   \n ", ""),
        ("<p></p><div> </div>", ""),
        ("<!-- only a comment -->", ""),
    ],
)
def test_telegram_html(html: str, expected: str) -> None:
    out = telegram_html(html, BASE)
    assert out == expected
    validate_telegram_html(out)


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/about", "https://example.com/about"),
        ("next", "https://example.com/blog/next"),
        ("//cdn.example.org/x", "https://cdn.example.org/x"),
        ("https://other.org/a?b=1&c=2", "https://other.org/a?b=1&amp;c=2"),
        ("https://other.org/a b", "https://other.org/a%20b"),
        ('https://other.org/"q"', "https://other.org/%22q%22"),
        ("tg://resolve?domain=durov", "tg://resolve?domain=durov"),
        ("mailto:me@example.com", "mailto:me@example.com"),
        ("  https://other.org/\n", "https://other.org/"),
        ("javascript:alert(1)", None),
        ("JavaScript:alert(1)", None),
        ("java\tscript:alert(1)", None),
        ("&#106;avascript:alert(1)", None),
        ("vbscript:x", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("ftp://example.com/file", None),
        ("http://", None),
        ("http://[::1", None),
        ("", None),
    ],
)
def test_telegram_html_links(href: str, expected: str | None) -> None:
    out = telegram_html(f"<a href='{href}'>text</a>", BASE)
    validate_telegram_html(out)
    assert out == (f'<a href="{expected}">text</a>' if expected else "text")


def test_telegram_html_relative_links_need_a_base() -> None:
    assert telegram_html('<a href="/about">about</a>') == "about"
    assert telegram_html('<a href="https://x.org/">x</a>') == '<a href="https://x.org/">x</a>'


def test_telegram_html_never_nests_links() -> None:
    html = '<a href="https://a.org"><b>a</b> <span><a href="https://b.org">b</a></span></a>'
    out = telegram_html(html)
    validate_telegram_html(out)
    assert out.count("<a ") == out.count("</a>") >= 1


def test_telegram_html_image_links() -> None:
    html = '<p>see <img src="/i.png" alt="the chart"></p><a href="/p"><img src="/t.png"></a><img src="javascript:x">'
    out = telegram_html(html, BASE, keep_image_links=True)
    assert out == (
        'see <a href="https://example.com/i.png">the chart</a>\n\n<a href="https://example.com/p">image</a>'
    )
    validate_telegram_html(out)


def test_telegram_html_full_documents_and_xml_declarations() -> None:
    doc = '<?xml version="1.0" encoding="utf-8"?><html><head><title>T</title><meta charset="latin1"></head><body><p>é</p></body></html>'
    assert telegram_html(doc) == "é"


def test_telegram_html_control_characters_and_surrogates() -> None:
    out = telegram_html("a\x00b\x01c\x0cd\ud800e\x85f\ufffeg")
    assert out == "abc de fg"
    validate_telegram_html(out)


# --------------------------------------------------------------------- plain_text


@pytest.mark.parametrize(
    ("html", "links", "expected"),
    [
        (
            "<p>Hello <b>world</b> &amp; <i>friends</i></p><p>Second&nbsp;para<br>line</p>",
            False,
            "Hello world & friends\n\nSecond para\nline",
        ),
        ("<ul><li>a</li><li>b</li></ul>", False, "• a\n• b"),
        ("<script>x()</script><style>p{}</style>text &lt;tag&gt;", False, "text <tag>"),
        (
            '<a href="/a">About us</a> and <a href="https://x.org/">x.org</a>',
            True,
            "About us (https://example.com/a) and x.org",
        ),
        ('<a href="/a">About us</a>', False, "About us"),
        ('<a href="mailto:me@x.org">me@x.org</a>', True, "me@x.org"),
        ('<a href="javascript:x">js</a>', True, "js"),
        ("<pre>  code\n    more</pre>", False, "  code\n    more"),
        ("<h1>T</h1><table><tr><td>1</td><td>2</td></tr></table>", False, "T\n\n1 | 2"),
    ],
)
def test_plain_text(html: str, links: bool, expected: str) -> None:
    assert plain_text(html, BASE, links=links) == expected


# --------------------------------------------------------------------- email_html


def _email_problems(out: str) -> list[str]:
    """Everything unsafe left in an email body: dangerous elements, handlers, URLs."""
    problems = []
    if not out:
        return problems
    for el in lxml.html.fragments_fromstring(f"<div>{out}</div>")[0].iter():
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in {
            "script",
            "style",
            "iframe",
            "object",
            "embed",
            "form",
            "input",
            "frame",
            "base",
            "meta",
            "link",
        }:
            problems.append(f"element {tag}")
        for name, value in el.attrib.items():
            if name.lower().startswith("on"):
                problems.append(f"attribute {name}")
            compact = re.sub(r"\s", "", value).lower()
            if compact.startswith(("javascript:", "vbscript:")) or (
                compact.startswith("data:") and not compact.startswith("data:image/")
            ):
                problems.append(f"{name}={value}")
    return problems


def test_email_html_removes_active_content() -> None:
    html = """
    <p onclick="steal()" style="color:red">Hi <b>there</b></p>
    <script>alert(1)</script><style>body{display:none}</style>
    <iframe src="https://evil.example/"></iframe><object data="x.swf"></object><embed src="x.swf">
    <form action="https://evil.example/"><input name="pw"><button>Go</button>form text</form>
    <a href="javascript:alert(1)" onmouseover="x()">js link</a>
    <a href=" JaVa&#x09;ScRiPt:alert(1)">obfuscated</a>
    <a href="vbscript:msgbox(1)">vb</a>
    <a href="data:text/html;base64,PHNjcmlwdD4=">data link</a>
    <img src="data:image/png;base64,iVBORw0KGgo=" onerror="x()">
    <img src="data:image/svg+xml;base64,PHN2Zz4=">
    <div style="background:url(javascript:alert(1))">styled</div>
    <svg onload="x()"><script>y()</script></svg>
    """
    out = email_html(html, BASE)
    assert _email_problems(out) == []
    assert '<p style="color:red">Hi <b>there</b></p>' in out
    assert "form text" in out and "js link" in out and "obfuscated" in out
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in out
    assert "svg+xml" not in out
    assert "<div>styled</div>" in out


def test_email_html_resolves_and_keeps_formatting() -> None:
    html = (
        '<h1>T</h1><p><a href="/a" title="t">link</a> <img src="i.png" width="600" style="border:0">'
        '<img srcset="a.png 1x, javascript:x 2x" src="b.png"></p>'
        "<table border=1><tr><td colspan=2>cell</td></tr></table><ul><li>item</li></ul>"
    )
    out = email_html(html, BASE)
    assert out == (
        '<h1>T</h1><p><a href="https://example.com/a" title="t">link</a> '
        '<img src="https://example.com/blog/i.png" width="600" style="border:0;max-width:100%;height:auto">'
        '<img srcset="https://example.com/blog/a.png 1x" src="https://example.com/blog/b.png" '
        'style="max-width:100%;height:auto"></p>'
        '<table border="1"><tr><td colspan="2">cell</td></tr></table><ul><li>item</li></ul>'
    )


def test_email_html_unwraps_unknown_elements() -> None:
    assert email_html("<custom-el data-x='1'>a</custom-el><o:p>b</o:p><word<script>c") == "abc"
    assert email_html("") == ""
    assert email_html("plain &amp; simple") == "plain &amp; simple"


# ------------------------------------------------------------------ truncation


@pytest.mark.parametrize(
    ("text", "limit", "unit", "expected"),
    [
        ("short", 10, "chars", "short"),
        ("exactly10!", 10, "chars", "exactly10!"),
        ("The quick brown fox jumps", 15, "chars", "The quick…"),
        ("The quick, brown fox", 12, "chars", "The quick…"),  # no dangling comma
        ("Supercalifragilistic", 8, "chars", "Superca…"),  # no space near: grapheme cut
        ("日本語のテキストです", 6, "chars", "日本語のテ…"),
        ("日本語のテキストです", 6, "utf16", "日本語のテ…"),
        (f"ab{FAMILY}cd", 9, "chars", "ab…"),  # the family (7 code points) is not split
        (f"ab{FAMILY}cd", 10, "chars", f"ab{FAMILY}…"),
        (f"ab{FAMILY}cd", 13, "utf16", "ab…"),  # 11 UTF-16 units
        (f"ab{FAMILY}cd", 14, "utf16", f"ab{FAMILY}…"),
        (f"x{FLAGS}", 5, "chars", "x🇩🇪…"),  # flags are pairs
        (f"{THUMB}{THUMB}{THUMB}", 5, "chars", f"{THUMB}{THUMB}…"),
        (f"{ACCENTED * 5}", 4, "chars", f"{ACCENTED}…"),
        ("😀😀😀😀", 5, "utf16", "😀😀…"),
        ("😀😀😀😀", 5, "chars", "😀😀😀😀"),
        ("anything", 0, "chars", ""),
        ("anything", 1, "chars", "…"),
        ("anything", 2, "chars", "a…"),
    ],
)
def test_truncate_text(text: str, limit: int, unit: str, expected: str) -> None:
    out = truncate_text(text, limit, unit=unit)  # type: ignore[arg-type]
    assert out == expected
    assert (utf16_len(out) if unit == "utf16" else len(out)) <= limit


def test_truncate_text_custom_ellipsis() -> None:
    assert truncate_text("one two three four", 12, " [...]") == "one [...]"
    assert truncate_text("one two three four", 3, " [...]") == "one"  # ellipsis longer than the limit


def test_grapheme_boundaries() -> None:
    assert not is_grapheme_boundary(ACCENTED, 1)
    assert not is_grapheme_boundary(HEART, 1)
    assert not is_grapheme_boundary(THUMB, 1)
    assert not any(is_grapheme_boundary(FAMILY, i) for i in range(1, len(FAMILY)))
    assert [i for i in range(1, len(FLAGS)) if is_grapheme_boundary(FLAGS, i)] == [2, 4]
    assert is_grapheme_boundary("ab", 1)
    assert cut_point("abc def", 100) == 7


@pytest.mark.parametrize(
    ("html", "limit", "expected"),
    [
        ("<b>short</b>", 10, "<b>short</b>"),
        ("<b>bold words here</b> tail", 12, "<b>bold words</b>…"),
        (
            '<a href="https://example.com/very/long">a link text</a> more',
            8,
            '<a href="https://example.com/very/long">a link</a>…',
        ),
        ("a &amp; b &amp; c &amp; d", 8, "a &amp; b &amp;…"),  # entities count as one character
        (
            '<pre><code class="language-py">x = 1\ny = 2</code></pre>',
            7,
            '<pre><code class="language-py">x = 1</code></pre>…',
        ),
        ("<blockquote>quoted text</blockquote> after", 8, "<blockquote>quoted</blockquote>…"),
        ("one <b></b><i>two three</i>", 5, "one…"),  # no empty elements left behind
        ("<b>abcdefgh</b>", 1, "…"),
        ("<b>abcdefgh</b>", 0, ""),
        ("😀😀😀😀", 5, "😀😀…"),
        ("&#x1F600;&#x1F600;&#x1F600;", 5, "&#x1F600;&#x1F600;…"),
        ("a &lt;b&gt; c", 6, "a &lt;b&gt;…"),
    ],
)
def test_truncate_telegram(html: str, limit: int, expected: str) -> None:
    out = truncate_telegram(html, limit)
    assert out == expected
    validate_telegram_html(out)
    assert telegram_text_length(out) <= limit


def test_truncate_telegram_rejects_invalid_input() -> None:
    with pytest.raises(TelegramHtmlError):
        truncate_telegram("<div>x</div>", 10)


def test_pack() -> None:
    blocks = ["<b>one</b>", "two", "three", "four"]
    assert pack(blocks, 100) == ["<b>one</b>\n\ntwo\n\nthree\n\nfour"]
    assert pack(blocks, 10) == ["<b>one</b>\n\ntwo", "three", "four"]
    assert pack(blocks, 5) == ["<b>one</b>", "two", "three", "four"]
    assert pack(["a" * 20, "b"], 10) == ["a" * 9 + "…", "b"]
    assert pack([], 10) == []
    assert pack(["a b", "c"], 4, separator=" / ", length=len, truncate=truncate_text) == ["a b", "c"]
    assert pack(["ab", "c"], 8, separator=" / ", length=len, truncate=truncate_text) == ["ab / c"]


# ------------------------------------------------------------ golden: the corpus


def _corpus() -> list[CorpusFile]:
    """The copied corpus and our fixtures (every one must be there), plus the shared
    corpus's other files when it is beside the clone."""
    local = [e for e in load_manifest(CORPUS) + load_manifest(FIXTURES) if e.kind in ("feeds", "catalogues")]
    names = {e.name for e in local}
    shared = [
        e
        for e in load_manifest(SHARED_CORPUS, required=False)
        if e.kind in ("feeds", "catalogues") and e.name not in names
    ]
    return local + [e for e in shared if e.path.exists()]


CORPUS_FILES = _corpus()


@cache
def _items(entry: CorpusFile) -> list[tuple[str, str | None]]:
    body = entry.path.read_bytes()
    url = f"https://example.com/{entry.name}"
    result = parse_feed(body, url) if entry.kind == "feeds" else parse_document(body, url)
    return [(item.content or item.summary or "", item.url or result.link or url) for item in result.items]


_ONLY_FOUR_ENTITIES = re.compile(r"&(?!(?:lt|gt|amp|quot);)")
_HREF = re.compile(r'<a href="([^"]*)">')


@pytest.mark.parametrize("entry", CORPUS_FILES, ids=[e.name for e in CORPUS_FILES])
def test_golden_corpus(entry: CorpusFile) -> None:
    items = _items(entry)
    assert items or "sitemap_index" in entry.name, "no items parsed"  # an index lists sitemaps
    for html, url in items:
        out = telegram_html(html, url)
        validate_telegram_html(out)
        assert out == out.strip()
        assert not _ONLY_FOUR_ENTITIES.search(out)
        assert "\n\n\n" not in re.sub(r"<pre>.*?</pre>", "(pre)", out, flags=re.S)
        for href in _HREF.findall(out):
            assert href.split(":", 1)[0] in ("http", "https", "tg", "mailto"), href
        visible = telegram_visible_text(out)
        for limit in (1024, 4096):
            short = truncate_telegram(out, limit)
            validate_telegram_html(short)
            assert telegram_text_length(short) <= limit
            if short != out:
                assert visible.startswith(telegram_visible_text(short).removesuffix("…"))
        # plain text is exactly what Telegram would show: no tags survive
        assert plain_text(html, url) == visible
        assert _email_problems(email_html(html, url)) == []


def test_golden_corpus_is_not_trivial() -> None:
    outputs = [telegram_html(html, url) for entry in CORPUS_FILES for html, url in _items(entry)]
    assert len(outputs) > 1000
    assert sum("<a href=" in o for o in outputs) > 100
    assert sum(telegram_text_length(o) > 1024 for o in outputs) > 20  # truncation was exercised


# ------------------------------------------------------------- property tests

HARD_TEXT = [
    FAMILY,
    FLAGS,
    THUMB,
    HEART,
    ACCENTED,
    "مرحبا بالعالم",
    "日本語のテキスト",
    "한국어",
    "\u200d",
    "\ufe0f",
    "\u0301",
]
PIECES = [
    "<b>", "</b>", "<i>", "</i>", "<p>", "</p>", "<br>", "<div>", "</div>", "<li>", "<ul>", "</ul>", "<ol>",
    '<a href="/x">', '<a href="https://e.org/?a=1&b=2">', '<a href="javascript:x">', "</a>", "<pre>", "</pre>",
    "<code>", "</code>", '<pre><code class="language-py">', "<blockquote>", "</blockquote>", "<h1>", "</h1>",
    '<span class="tg-spoiler">', "</span>", '<tg-emoji emoji-id="12">', "</tg-emoji>", "<table><tr><td>",
    '<img src="i.png" alt="pic">', "<script>", "</script>", "<style>", "<!--", "-->", "<![CDATA[", "]]>",
    "&amp;", "&nbsp;", "&lt;", "&bogus;", "&#128512;", "&#0;", "<", ">", "&", '"', "'", " ", "\n", "\t", "\x00",
    "<?xml version='1.0'?>", "word", "Straße",
]  # fmt: skip
unicode_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
html_ish = st.lists(st.one_of(st.sampled_from(PIECES + HARD_TEXT), unicode_text), max_size=25).map("".join)
hard_text = st.lists(
    st.one_of(st.sampled_from([*HARD_TEXT, " ", "\n", "word", "a"]), unicode_text), max_size=20
).map("".join)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(html_ish, st.sampled_from([None, BASE]), st.booleans())
def test_property_telegram_html_always_validates(html: str, base: str | None, images: bool) -> None:
    out = telegram_html(html, base, keep_image_links=images)
    validate_telegram_html(out)
    assert out == out.strip()
    if not images:
        assert plain_text(html, base) == telegram_visible_text(out)
    assert _email_problems(email_html(html, base)) == []


@FAST
@given(html_ish, st.integers(min_value=0, max_value=120))
def test_property_truncate_telegram(html: str, limit: int) -> None:
    full = telegram_html(html, BASE)
    out = truncate_telegram(full, limit)
    validate_telegram_html(out)
    assert telegram_text_length(out) <= limit
    visible = telegram_visible_text(out)
    if out == full:
        assert telegram_text_length(full) <= limit
    else:
        kept = visible.removesuffix("…")
        assert telegram_visible_text(full).startswith(kept)
        assert is_grapheme_boundary(telegram_visible_text(full), len(kept))


@FAST
@given(hard_text, st.integers(min_value=0, max_value=40), st.sampled_from(["chars", "utf16"]))
def test_property_truncate_text(text: str, limit: int, unit: str) -> None:
    out = truncate_text(text, limit, unit=unit)  # type: ignore[arg-type]
    assert (utf16_len(out) if unit == "utf16" else len(out)) <= limit
    if out != text:
        kept = out.removesuffix("…")
        assert text.startswith(kept)
        assert is_grapheme_boundary(text, len(kept))


@FAST
@given(hard_text)
def test_property_escaped_text_round_trips(text: str) -> None:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert telegram_visible_text(escaped) == text
    assert telegram_text_length(escaped) == utf16_len(text)


@FAST
@given(st.lists(html_ish.map(telegram_html), max_size=12), st.integers(min_value=1, max_value=80))
def test_property_pack(blocks: list[str], limit: int) -> None:
    parts = pack(blocks, limit)
    for part in parts:
        validate_telegram_html(part)
        assert telegram_text_length(part) <= limit
    fitted = [b if telegram_text_length(b) <= limit else truncate_telegram(b, limit) for b in blocks]
    assert "\n\n".join(parts) == "\n\n".join(fitted)  # nothing lost, nothing reordered
    # each message is whole blocks, and could not have taken the next message's first block
    rest = iter(fitted)
    firsts = []
    for part in parts:
        taken = [next(rest)]
        while "\n\n".join(taken) != part:
            taken.append(next(rest))
        firsts.append(taken[0])
    assert next(rest, None) is None
    for part, following in zip(parts, firsts[1:], strict=False):
        assert telegram_text_length(part) + 2 + telegram_text_length(following) > limit


_REF_TAG = re.compile(r"<(/?)([^\s>/]*)[^>]*>")
_REF_TEXT = re.compile(r"(?:[^&<>]|&(?:lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);)*", re.S)
_REF_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]+)|#x([0-9a-fA-F]+));")
_SUPPORTED = {"a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre"}
_SUPPORTED |= {"blockquote", "span", "tg-spoiler", "tg-emoji"}


def _validation_error(text: str) -> str | None:
    try:
        validate_telegram_html(text)
    except TelegramHtmlError as err:
        return str(err)
    return None


def _reference_decode(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1):
            return {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}[m.group(1)]
        return chr(int(m.group(2), 10) if m.group(2) else int(m.group(3), 16))

    return _REF_ENTITY.sub(one, text)


valid_telegram = html_ish.map(telegram_html) | html_ish.map(lambda h: truncate_telegram(telegram_html(h), 30))


@FAST
@given(st.text(max_size=60) | html_ish | valid_telegram)
def test_property_validator_accepts_only_what_the_spec_allows(text: str) -> None:
    """An independent, simpler reading of channels.md agrees with every acceptance."""
    error = _validation_error(text)
    if error is not None:
        assert error.startswith("Bad Request: ")
        return
    stack: list[str] = []
    for m in _REF_TAG.finditer(text):
        name = m.group(2).lower()
        assert name in _SUPPORTED
        if m.group(1):
            assert stack.pop() == name
        else:
            assert not stack or stack[-1] not in ("pre", "code") or (stack[-1], name) == ("pre", "code")
            assert name not in ("a", "blockquote") or name not in stack
            stack.append(name)
    assert not stack
    outside = _REF_TAG.sub("", text)
    assert _REF_TEXT.fullmatch(outside)
    assert _reference_decode(outside) == telegram_visible_text(text)
