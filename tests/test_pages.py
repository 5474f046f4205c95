"""sources/pages.py: feed autodiscovery and items scraped from HTML pages."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedcast.kernel.models import FeedLink, SourceKind
from sources.pages import PageSelectors, discover_feeds, parse_page
from tests.conftest import CORPUS, DATA, CorpusFile, load_manifest

FIXTURES = DATA / "fixtures" / "pages"
PAGES = [f for f in load_manifest(CORPUS) if f.kind == "pages"]
CATALOGUE_HTML = [f for f in load_manifest(CORPUS) if f.kind == "catalogues" and f.path.suffix == ".html"]


@dataclass(frozen=True)
class Expect:
    url: str  # the page's real origin URL, from its canonical / og:url / own links
    feeds: tuple[tuple[str, str], ...]  # (url, type), in the order discover_feeds must give
    fmt: str
    items: int
    # rel=alternate links the MANIFEST counts as feed-like that we do NOT return (none so far)
    excluded: int = 0


EXPECTED: dict[str, Expect] = {
    # JSON-LD is Organization / WebSite / WebPage only (ignored); og:type website on the
    # home page, so no single-article item either.
    "pages/apple_home_nofeed.html": Expect("https://www.apple.com/", (), "html", 0),
    # Atom + RSS of the blog, then the per-post comments feed (ranked last).
    "pages/blogger_siliconexposed_article.html": Expect(
        "http://siliconexposed.blogspot.com/2016/05/open-verilog-flow-for-silego-greenpak4.html",
        (
            ("http://siliconexposed.blogspot.com/feeds/posts/default", "atom"),
            ("http://siliconexposed.blogspot.com/feeds/posts/default?alt=rss", "rss"),
            ("http://siliconexposed.blogspot.com/feeds/932306423056216142/comments/default", "atom"),
        ),
        "opengraph",
        1,
    ),
    "pages/codehollow_wordpress_home.html": Expect(
        "https://codehollow.com/",
        (("https://codehollow.com/feed/", "rss"), ("https://codehollow.com/comments/feed/", "rss")),
        "articles",
        10,
    ),
    # relative hrefs; the JSON Feed is type application/json with href /feeds/json (kept)
    "pages/daringfireball_home.html": Expect(
        "https://daringfireball.net/",
        (
            ("https://daringfireball.net/feeds/main", "atom"),
            ("https://daringfireball.net/feeds/json", "json"),
        ),
        "headings",
        3,
    ),
    "pages/heise_home.html": Expect(
        "https://www.heise.de/",
        (("https://www.heise.de/rss/heise-atom.xml", "atom"), ("https://www.heise.de/rss/heise.rdf", "rss")),
        "html",
        0,
    ),
    # unquoted attributes; JSON Feed announced as application/json titled "... JSON feed"
    "pages/inessential_home.html": Expect(
        "https://inessential.com/",
        (("https://inessential.com/xml/rss.xml", "rss"), ("https://inessential.com/feed.json", "json")),
        "articles",
        8,
    ),
    "pages/medium_article_nofeed.html": Expect(
        "https://medium.com/@pippinlee/the-open-journalism-project-better-student-journalism-fb39f4f701bb",
        (),
        "opengraph",
        1,
    ),
    # the feed lives on another host
    "pages/orf_news_home.html": Expect(
        "https://news.orf.at/", (("https://rss.orf.at/news.xml", "rss"),), "html", 0
    ),
    "pages/scripting_news_home.html": Expect(
        "http://scripting.com/", (("http://scripting.com/rss.xml", "rss"),), "html", 0
    ),
    # relative Atom href, no charset declared
    "pages/stackoverflow_home.html": Expect(
        "https://stackoverflow.com/", (("https://stackoverflow.com/feeds", "atom"),), "html", 0
    ),
    # og:type "article" but it is the home page: no single-article item
    "pages/stadtfeuerwehr_weiz_home.html": Expect(
        "http://www.stadtfeuerwehr-weiz.at/",
        (("http://www.stadtfeuerwehr-weiz.at/rss/einsaetze.xml", "rss"),),
        "html",
        0,
    ),
    # one relative, one absolute href
    "pages/theverge_home.html": Expect(
        "https://www.theverge.com/",
        (
            ("https://www.theverge.com/rss/index.xml", "rss"),
            ("https://www.theverge.com/rss/front-page/index.xml", "rss"),
        ),
        "html",
        0,
    ),
    # href before rel; the page has no canonical link, its URL is the blog post's
    "pages/v8_blog_article.html": Expect(
        "https://v8.dev/blog/emscripten-standalone-wasm",
        (("https://v8.dev/blog.atom", "atom"), ("https://v8.dev/features.atom", "atom")),
        "opengraph",
        1,
    ),
    # Site feed and podcast feed first, then the site's comments feed and the post's own
    # comments feed. Not returned: the two oEmbed alternates (application/json+oembed,
    # text/xml+oembed -- embed descriptions, not feeds); the MANIFEST's 4 does not count them.
    "pages/wptavern_wordpress_article.html": Expect(
        "https://wptavern.com/stack-overflow-jobs-data-shows-reactjs-skills-in-high-demand-wordpress-market-oversaturated-with-developers",
        (
            ("https://wptavern.com/feed", "rss"),
            ("https://wptavern.com/feed/podcast", "rss"),
            ("https://wptavern.com/comments/feed", "rss"),
            (
                "https://wptavern.com/stack-overflow-jobs-data-shows-reactjs-skills-in-high-demand-"
                "wordpress-market-oversaturated-with-developers/feed",
                "rss",
            ),
        ),
        "opengraph",
        1,
    ),
    "pages/xkcd_home.html": Expect(
        "https://xkcd.com/",
        (("https://xkcd.com/atom.xml", "atom"), ("https://xkcd.com/rss.xml", "rss")),
        "html",
        0,
    ),
}

_FEED_COUNT = re.compile(r"(\d+) feed-like rel=alternate link")


def _manifest_feed_count(entry: CorpusFile) -> int:
    match = _FEED_COUNT.search(entry.notes)
    assert match, f"MANIFEST note of {entry.name} does not say how many feed links it has"
    return int(match.group(1))


def test_every_corpus_page_has_an_expectation() -> None:
    assert PAGES, "no pages in the corpus MANIFEST"
    assert {f.name for f in PAGES} == set(EXPECTED)


@pytest.mark.parametrize("entry", PAGES, ids=lambda f: f.name)
def test_corpus_page_feeds(entry: CorpusFile) -> None:
    expect = EXPECTED[entry.name]
    body = entry.path.read_bytes()
    feeds = discover_feeds(body, expect.url)
    assert [(f.url, f.type) for f in feeds] == list(expect.feeds)
    assert len(feeds) == _manifest_feed_count(entry) - expect.excluded
    if feeds:
        assert feeds[0].type == expect.feeds[0][1]
    assert len({f.url for f in feeds}) == len(feeds)


@pytest.mark.parametrize("entry", PAGES, ids=lambda f: f.name)
def test_corpus_page_items(entry: CorpusFile) -> None:
    expect = EXPECTED[entry.name]
    result = parse_page(entry.path.read_bytes(), expect.url)
    assert result.kind is SourceKind.PAGE
    assert result.feeds == discover_feeds(entry.path.read_bytes(), expect.url)
    assert result.format == expect.fmt
    assert len(result.items) == expect.items
    if not result.items:
        assert any("no items found" in w for w in result.warnings)
    urls = [item.url for item in result.items]
    assert len(set(urls)) == len(urls)
    for item in result.items:
        assert item.url
        assert item.url.startswith(("http://", "https://"))
        assert item.key == item.url
        assert item.title


def test_entity_in_feed_title_is_decoded() -> None:
    body = (CORPUS / "pages" / "stadtfeuerwehr_weiz_home.html").read_bytes()
    (feed,) = discover_feeds(body, "http://www.stadtfeuerwehr-weiz.at/")
    assert feed.title == "Stadtfeuerwehr Weiz - Einsätze"


def test_feed_titles_of_wordpress_pages() -> None:
    body = (CORPUS / "pages" / "codehollow_wordpress_home.html").read_bytes()
    assert [f.title for f in discover_feeds(body, "https://codehollow.com/")] == [
        "codehollow » Feed",
        "codehollow » Comments Feed",
    ]


def test_apple_home_has_no_feeds_and_no_items() -> None:
    result = parse_page((CORPUS / "pages" / "apple_home_nofeed.html").read_bytes(), "https://www.apple.com/")
    assert result.feeds == ()
    assert result.items == ()
    assert result.format == "html"
    assert result.title == "Apple"
    assert result.link == "https://www.apple.com/"


def test_medium_article_item_from_opengraph() -> None:
    url = "https://medium.com/@pippinlee/the-open-journalism-project-better-student-journalism-fb39f4f701bb"
    result = parse_page((CORPUS / "pages" / "medium_article_nofeed.html").read_bytes(), url)
    assert result.feeds == ()
    (item,) = result.items
    assert item.title == "The Open Journalism Project: Better Student Journalism"
    assert item.url == url
    assert item.author == "Pippin Lee"
    assert item.published == datetime(2015, 3, 17, 16, 27, 40, 294000, tzinfo=UTC)
    assert item.summary
    assert item.summary.startswith("We pushed out the first version of the Open Journalism site")
    assert item.image
    assert item.image.startswith("https://d262ilb51hltx0.cloudfront.net/max/800/")


def test_wordpress_article_page_is_one_item() -> None:
    expect = EXPECTED["pages/wptavern_wordpress_article.html"]
    result = parse_page((CORPUS / "pages" / "wptavern_wordpress_article.html").read_bytes(), expect.url)
    (item,) = result.items
    assert item.url == expect.url
    assert item.title == (
        "Stack Overflow Jobs Data Shows ReactJS Skills in High Demand, "
        "WordPress Market Oversaturated with Developers"
    )
    assert item.author == "Sarah Gooding"
    assert item.published == datetime(2017, 3, 9, 23, 16, 2, tzinfo=UTC)
    assert "jobs" in item.tags


def test_v8_article_without_opengraph_uses_microdata() -> None:
    expect = EXPECTED["pages/v8_blog_article.html"]
    (item,) = parse_page((CORPUS / "pages" / "v8_blog_article.html").read_bytes(), expect.url).items
    assert item.title == "Outside the web: standalone WebAssembly binaries using Emscripten"
    assert item.url == expect.url
    assert item.published == datetime(2019, 11, 21, tzinfo=UTC)
    assert item.tags == ("WebAssembly", "tooling")
    assert item.image is None  # the author's avatar in the footer is not the post's image


def test_blogger_article_date_from_microdata() -> None:
    expect = EXPECTED["pages/blogger_siliconexposed_article.html"]
    (item,) = parse_page(
        (CORPUS / "pages" / "blogger_siliconexposed_article.html").read_bytes(), expect.url
    ).items
    assert item.title == "Open Verilog flow for Silego GreenPak4 programmable logic devices"
    assert item.published == datetime(2016, 5, 8, 7, 55, tzinfo=UTC)


def test_corpus_listing_pages_items() -> None:
    df = parse_page(
        (CORPUS / "pages" / "daringfireball_home.html").read_bytes(), "https://daringfireball.net/"
    )
    first = df.items[0]
    assert (
        first.url
        == "https://daringfireball.net/2025/10/m5_chip_launches_with_macbook_pro_ipad_pro_vision_pro"
    )
    assert first.title
    assert first.title.endswith("Called Vision Pro")  # &#160; collapsed
    assert first.published == datetime(2025, 10, 15, tzinfo=UTC)  # "Wednesday, 15 October 2025"

    ch = parse_page(
        (CORPUS / "pages" / "codehollow_wordpress_home.html").read_bytes(), "https://codehollow.com/"
    )
    first = ch.items[0]
    assert first.title == "Change device owner of an Azure AD joined device"
    assert first.published == datetime(2019, 2, 3, 9, 0, 40, tzinfo=UTC)
    assert first.summary
    assert first.summary.startswith("If you join devices to Azure AD")
    assert first.image == "https://codehollow.com/wp-content/uploads/2019/02/20190203_AzureADDevices.jpg"

    ine = parse_page((CORPUS / "pages" / "inessential_home.html").read_bytes(), "https://inessential.com/")
    assert ine.items[0].title == "Why NetNewsWire Is Not a Web App"
    assert ine.items[0].published == datetime(2025, 10, 4, tzinfo=UTC)  # "04 Oct 2025" dateline


@pytest.mark.parametrize("entry", CATALOGUE_HTML, ids=lambda f: f.name)
def test_catalogue_pages_discover_feeds(entry: CorpusFile) -> None:
    body = entry.path.read_bytes()
    feeds = discover_feeds(body, "https://shop.example/")
    assert len(feeds) == _manifest_feed_count(entry)
    if "etsy" in entry.name:
        assert feeds == (
            FeedLink(
                url="https://www.etsy.com/es/shop/OliveCreativeCompany/rss/",
                type="rss",
                title="Shop RSS for OliveCreativeCompany on Etsy",
            ),
        )
    result = parse_page(body, "https://shop.example/")  # not a blog: no crash is enough
    assert result.kind is SourceKind.PAGE


# --------------------------------------------------------------------------- autodiscovery edge cases


def test_feed_link_quirks() -> None:
    body = b"""<!doctype html><html><head>
    <link REL="Alternate Home" TYPE="Application/RSS+XML; charset=utf-8" HREF="/rss" title="Main">
    <link href=/atom.xml type=application/atom+xml rel=alternate title=Atom>
    <link rel="alternate" type="application/json" href="https://blog.example/wp-json/wp/v2/posts/7">
    <link rel="alternate" type="application/json" title="JSON" href="/api/data.json">
    <link rel="alternate" type="application/json+oembed" href="/wp-json/oembed/1.0/embed?url=x">
    <link rel="alternate" type="text/xml+oembed" href="/wp-json/oembed/1.0/embed?url=x&amp;format=xml">
    <link rel="alternate" type="application/feed+json" href="/feed.json" title="JSON Feed">
    <link rel="alternate" type="application/json" href="/everything.json" title="My JSON Feed">
    <link rel="alternate" type="application/rss+xml" href="/comments/feed/" title="Comments">
    <link rel="alternate" type="application/rss+xml" href="/rss" title="Main again">
    <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
    <link rel="alternate stylesheet" type="text/css" href="/dark.css">
    <link rel="alternate" hreflang="de" href="/de/">
    <link rel="alternate" type="application/atom+xml" href="//feeds.example.net/b.atom">
    </head><body></body></html>"""
    feeds = discover_feeds(body, "https://blog.example/posts/7")
    assert [(f.url, f.type, f.title) for f in feeds] == [
        ("https://blog.example/rss", "rss", "Main"),
        ("https://blog.example/atom.xml", "atom", "Atom"),
        ("https://blog.example/feed.json", "json", "JSON Feed"),
        ("https://blog.example/everything.json", "json", "My JSON Feed"),
        ("https://feeds.example.net/b.atom", "atom", None),
        ("https://blog.example/comments/feed/", "rss", "Comments"),
    ]


def test_feeds_from_link_header() -> None:
    headers = {
        "Link": '</feed.xml>; rel="alternate"; type="application/rss+xml"; title="Site", </x>; rel="next"'
    }
    feeds = discover_feeds(b"<html><head></head><body>hi</body></html>", "https://a.example/", headers)
    assert feeds == (FeedLink("https://a.example/feed.xml", "rss", "Site"),)


def test_base_href_is_respected() -> None:
    body = b"""<html><head><base href="https://cdn.example.org/blog/">
    <link rel="alternate" type="application/atom+xml" href="feed.atom"></head>
    <body><main><article><h2><a href="posts/one.html">One</a></h2><img src="img/one.png"></article></main>
    </body></html>"""
    result = parse_page(body, "https://www.example.com/somewhere/page.html")
    assert result.feeds == (FeedLink("https://cdn.example.org/blog/feed.atom", "atom", None),)
    (item,) = result.items
    assert item.url == "https://cdn.example.org/blog/posts/one.html"
    assert item.image == "https://cdn.example.org/blog/img/one.png"


def test_relative_base_href() -> None:
    body = (
        b'<html><head><base href="/sub/">'
        b"<link rel=alternate type=application/rss+xml href=rss.xml></head></html>"
    )
    assert discover_feeds(body, "https://x.example/a/b")[0].url == "https://x.example/sub/rss.xml"


def test_charset_from_header_and_bom() -> None:
    latin = '<html><head><link rel="alternate" type="application/rss+xml" title="Caf\xe9" href="/f"></head>'
    feeds = discover_feeds(
        latin.encode("latin-1"), "https://c.example/", {"Content-Type": "text/html; charset=ISO-8859-1"}
    )
    assert feeds[0].title == "Café"
    bom = b"\xef\xbb\xbf" + latin.encode("utf-8")
    assert discover_feeds(bom, "https://c.example/")[0].title == "Café"


# --------------------------------------------------------------------------- items


def test_selectors_on_listing() -> None:
    body = (FIXTURES / "listing_selectors.html").read_bytes()
    selectors = PageSelectors.from_mapping(
        {
            "item": "#listing .card",
            "title": ".card-title",
            "link": "a.card-link",
            "summary": "p.teaser",
            "image": "img.thumb",
            "date": ".when",
        }
    )
    result = parse_page(body, "https://harbour.example/news/", selectors=selectors)
    assert result.format == "selectors"
    assert result.feeds == (FeedLink("https://harbour.example/news/rss", "rss", "Harbour Notes"),)
    assert [(i.title, i.url) for i in result.items] == [
        ("New ferry timetable from April", "https://harbour.example/news/2024/03/new-ferry-timetable"),
        ("Lighthouse open day & guided tours", "https://harbour.example/news/2024/02/lighthouse-open-day"),
        ("Winter storm report", "https://harbour.example/news/news/2024/01/winter-storm-report"),
    ]
    assert [i.image for i in result.items] == [
        "https://harbour.example/img/ferry-960.jpg",  # largest srcset candidate
        "https://harbour.example/img/lighthouse.webp",  # data-src, not the data: placeholder
        "https://harbour.example/img/storm.png",
    ]
    assert [i.published for i in result.items] == [
        datetime(2024, 3, 3, tzinfo=UTC),
        datetime(2024, 2, 17, 8, 30, tzinfo=UTC),
        datetime(2024, 1, 12, tzinfo=UTC),
    ]
    assert result.items[2].summary == "What the January storm did to the breakwater."
    assert all(i.key == i.url for i in result.items)


def test_selectors_defaults() -> None:
    body = (FIXTURES / "listing_selectors.html").read_bytes()
    result = parse_page(body, "https://harbour.example/news/", selectors=PageSelectors(item="div.card"))
    assert [i.title for i in result.items] == [
        "New ferry timetable from April",
        "Lighthouse open day & guided tours",
        "Winter storm report",
    ]
    assert result.items[0].url == "https://harbour.example/news/2024/03/new-ferry-timetable"
    assert result.items[0].image is None


def test_selectors_matching_nothing_fall_back_with_warning() -> None:
    body = (FIXTURES / "articles.html").read_bytes()
    result = parse_page(body, "https://journal.example/", selectors=PageSelectors(item="li.story"))
    assert result.format == "articles"
    assert any("selectors matched no items" in w and "li.story" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("mapping", "fragment"),
    [
        ({"item": "div.card", "title": "h2[", "link": "a"}, "'title'"),
        ({"item": "div >> p"}, "'item'"),
        ({"item": ":not-a-pseudo(x)"}, "'item'"),
        ({"item": "div", "colour": "red"}, "unknown page selector key 'colour'"),
        ({"title": "h2"}, "'item'"),
        ({"item": ""}, "'item'"),
        ({"item": "div", "date": 5}, "'date'"),
    ],
)
def test_invalid_selectors(mapping: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)) as info:
        PageSelectors.from_mapping(mapping)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    if "[" in str(mapping.get("title", "")):
        assert "h2[" in message
        assert "invalid CSS selector" in message


def test_selectors_constructor_validates() -> None:
    with pytest.raises(ValueError, match="invalid CSS selector for page selector 'summary'"):
        PageSelectors(item="div", summary="p..x")


def test_articles_page() -> None:
    result = parse_page((FIXTURES / "articles.html").read_bytes(), "https://journal.example/")
    assert result.format == "articles"
    assert result.title == "Field Journal"
    # the sidebar <article>, the header's home link, the footer and the "#comments"
    # duplicate of the first post are skipped
    assert [(i.title, i.url) for i in result.items] == [
        ("Moths at midnight", "https://journal.example/2024/05/moths-at-midnight/"),
        ("First swifts of the year", "https://journal.example/2024/05/first-swifts/"),
        ("Frogspawn, finally", "https://journal.example/2024/04/frogspawn/"),
    ]
    moths, swifts, frogs = result.items
    assert moths.published == datetime(2024, 5, 20, 20, 15, tzinfo=UTC)
    assert moths.updated == datetime(2024, 5, 21, 6, 0, tzinfo=UTC)
    assert moths.author == "Ines Kraft"
    assert moths.tags == ("moths", "night")
    assert moths.summary == "We set up a light trap by the pond and counted forty-one species."
    assert moths.image == "https://journal.example/img/moth-large.jpg"  # not the avatar
    assert swifts.summary == "Three screaming swifts over the church tower on the 2nd of May."
    # the 1x1 placeholder is skipped; the <img> of the <picture> wins over its AVIF <source>
    assert swifts.image == "https://journal.example/img/swifts-800.jpg"
    assert frogs.published == datetime(2024, 4, 2, tzinfo=UTC)
    assert frogs.summary == "The pond is full of it."


def test_itemlist_jsonld() -> None:
    result = parse_page(
        (FIXTURES / "itemlist_jsonld.html").read_bytes(), "https://kitchen.example/recipes/week"
    )
    assert result.format == "jsonld"
    # ordered by position; Organization and BreadcrumbList ignored; the duplicate URL
    # and the entry without a link dropped
    assert [(i.title, i.url) for i in result.items] == [
        ("Sourdough rye bread", "https://kitchen.example/recipes/rye-bread"),
        ("Plum cake with crumble", "https://kitchen.example/recipes/plum-cake"),
        ("Red lentil soup", "https://kitchen.example/recipes/lentil-soup"),
    ]
    rye, plum, _soup = result.items
    assert rye.image == "https://kitchen.example/img/rye.jpg"
    assert plum.author == "Ola Berg"
    assert plum.published == datetime(2024, 8, 30, 7, 0, tzinfo=UTC)
    assert plum.summary == "A late-summer tray bake."
    assert plum.image == "https://kitchen.example/img/plum.jpg"
    assert plum.tags == ("cake", "plums")


def test_jsonld_single_blogposting_uses_canonical() -> None:
    body = b"""<html><head><link rel="canonical" href="https://n.example/2024/one">
    <script type="application/ld+json">{"@context":"https://schema.org","@graph":[
      {"@type":"WebSite","url":"https://n.example/"},
      {"@type":["NewsArticle"],"headline":"One &amp; only","datePublished":"2024-01-02T03:04:05+01:00",
       "author":[{"@type":"Person","name":"A. Writer"},{"@type":"Person","name":"B. Editor"}],
       "image":["https://n.example/a.jpg","https://n.example/b.jpg"]}
    ]}</script></head><body><p>text</p></body></html>"""
    result = parse_page(body, "https://n.example/2024/one?utm_source=x")
    assert result.format == "jsonld"
    (item,) = result.items
    assert item.url == "https://n.example/2024/one"
    assert item.title == "One &amp; only"  # JSON-LD text is not HTML: kept as given
    assert item.author == "A. Writer, B. Editor"
    assert item.image == "https://n.example/a.jpg"
    assert item.published == datetime(2024, 1, 2, 2, 4, 5, tzinfo=UTC)


def test_headings_skip_chrome_and_home_links() -> None:
    body = b"""<html><body>
    <div class="header"><h1><a href="/">Site</a></h1></div>
    <nav><h2><a href="/about">About</a></h2></nav>
    <div id="content">
      <div class="entry"><h2><a href="/p/1">First post</a></h2>
        <p class="date">2024-03-01</p><p>Intro one.</p></div>
      <div class="entry"><h2><a href="/p/2">Second post</a></h2><p>Intro two.</p></div>
      <h3><a href="#top">Back to top</a></h3>
      <h3><a href="mailto:me@example.com">Write</a></h3>
    </div>
    <div class="sidebar"><h3><a href="/p/old">Old</a></h3></div>
    <footer><h3><a href="/imprint">Imprint</a></h3></footer>
    </body></html>"""
    result = parse_page(body, "https://h.example/")
    assert result.format == "headings"
    assert [(i.title, i.url, i.summary) for i in result.items] == [
        ("First post", "https://h.example/p/1", "Intro one."),
        ("Second post", "https://h.example/p/2", "Intro two."),
    ]
    assert result.items[0].published == datetime(2024, 3, 1, tzinfo=UTC)


def test_article_page_with_related_posts_is_the_article() -> None:
    body = b"""<html><head><meta property="og:type" content="article">
    <meta property="og:title" content="The real post">
    <meta property="article:published_time" content="2024-06-01T10:00:00Z">
    <link rel="canonical" href="https://r.example/real-post"></head><body><main>
    <article><h1>The real post</h1><p>Body.</p></article>
    <section>
      <article><h3><a href="/other-1">Other 1</a></h3></article>
      <article><h3><a href="/other-2">Other 2</a></h3></article>
    </section>
    </main></body></html>"""
    result = parse_page(body, "https://r.example/real-post")
    assert result.format == "opengraph"
    (item,) = result.items
    assert (item.title, item.url) == ("The real post", "https://r.example/real-post")
    assert item.published == datetime(2024, 6, 1, 10, tzinfo=UTC)


# --------------------------------------------------------------------------- messy input


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"https://example.com/page.html",
        b"index.html",
        bytes(range(256)) * 4,
        random.Random(7).randbytes(5000),
        b"<<<>>><\x00\xff\xfe<html",
        b"\xef\xbb\xbf",
        b"\xff\xfe<\x00h\x00t\x00m\x00l\x00>\x00",
        b"<!-- only a comment -->",
    ],
)
def test_garbage_gives_no_items_and_a_warning(body: bytes) -> None:
    result = parse_page(body, "https://g.example/")
    assert result.items == ()
    assert result.format == "html"
    assert result.warnings
    assert result.feeds == ()
    assert discover_feeds(body, "https://g.example/") == ()


def test_a_feed_given_as_page_is_reported() -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?>\n'
        b'<rss version="2.0"><channel><title>x</title></channel></rss>'
    )
    result = parse_page(body, "https://f.example/feed")
    assert result.items == ()
    assert any("looks like a feed" in w for w in result.warnings)


def test_xhtml_with_xml_declaration() -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head>'
        b'<link rel="alternate" type="application/atom+xml" href="/a.atom"/></head>'
        b'<body><article><h2><a href="/x">X</a></h2></article></body></html>'
    )
    result = parse_page(body, "https://x.example/")
    assert [f.url for f in result.feeds] == ["https://x.example/a.atom"]
    assert [i.url for i in result.items] == ["https://x.example/x"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.text(alphabet=st.sampled_from(list("<>/=\"' ahtmlinkrelbodyarticle#:&;-\n")), max_size=400).map(
            str.encode
        ),
    )
)
def test_never_raises(body: bytes) -> None:
    result = parse_page(body, "https://fuzz.example/dir/")
    assert result.kind is SourceKind.PAGE
    discover_feeds(body, "https://fuzz.example/dir/")
