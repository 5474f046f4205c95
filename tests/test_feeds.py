"""Golden tests for sources.feeds: every feed of the corpus, plus hostile and broken input.

The per-file expectations below were read off the files themselves (first item of
each), not copied from parser output.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from feedcast.kernel.models import Item, ParseResult, SourceKind
from sources.feeds import parse_feed
from tests.conftest import CORPUS, SHARED_CORPUS, SHARED_CORPUS_ABSENT, CorpusFile, load_manifest

FEEDS = [f for f in load_manifest(CORPUS) if f.kind == "feeds"]

# MANIFEST format column -> the formats parse_feed may report for it
FAMILIES = {
    "rss2": {"rss20"},
    "atom": {"atom10", "atom03"},
    "rdf": {"rss10", "rss090"},
    "rss0.91": {"rss091"},
    "rss0.92": {"rss092"},
    "jsonfeed": {"jsonfeed10", "jsonfeed11"},
}
# where the MANIFEST's count is not the right answer
COUNT_OVERRIDES = {"illegally_nested_items.xml": 10}  # 10 real items + 10 empty nested <item/>
# the document URL to parse with when the file has relative links
URLS = {
    "github_releases_signer.atom": "https://github.com/skyzyx/signer/releases.atom",
    "qemu_jekyll.atom": "https://www.qemu.org/feed.xml",
}
# the only corpus files that deserve a warning
EXPECTED_WARNINGS = {
    "osnews_rdf_iso88591.xml": "declared charset iso-8859-1 but the body is UTF-8",
    "illegally_nested_items.xml": "skipped 10 empty item(s)",
}


def _url_for(name: str) -> str:
    return URLS.get(name, f"https://feeds.example.com/{name}")


def _expected_count(cf: CorpusFile) -> int:
    name = cf.path.name
    if name in COUNT_OVERRIDES:
        return COUNT_OVERRIDES[name]
    counts = re.findall(r"(\d+) (?:items|entries)\b", cf.notes)
    assert counts, f"no item count in the MANIFEST notes of {cf.name}"
    return int(counts[-1])


def _parse(cf: CorpusFile) -> ParseResult:
    return parse_feed(cf.path.read_bytes(), _url_for(cf.path.name))


def _is_http_url(value: str | None) -> bool:
    if value is None:
        return False
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def _check_items(result: ParseResult) -> None:
    keys = [item.key for item in result.items]
    assert all(key.strip() for key in keys), "empty key"
    assert len(keys) == len(set(keys)), "duplicate keys"
    for item in result.items:
        if item.url is not None:
            assert _is_http_url(item.url), item.url
        if item.image is not None:
            assert _is_http_url(item.image), item.image
        for media in item.media:
            assert _is_http_url(media.url), media.url
            assert media.medium in {"image", "video", "audio", "file"}
        assert len({m.url for m in item.media}) == len(item.media), "media not de-duplicated"
        for moment in (item.published, item.updated):
            if moment is not None:
                assert moment.utcoffset() == timedelta(0), moment
        if item.title is not None:
            assert item.title == item.title.strip()
            assert "  " not in item.title


def test_corpus_has_feeds() -> None:
    assert len(FEEDS) >= 40


@pytest.mark.parametrize("cf", FEEDS, ids=[f.path.name for f in FEEDS])
def test_corpus_feed(cf: CorpusFile) -> None:
    result = _parse(cf)
    assert result.kind is SourceKind.FEED
    assert result.format in FAMILIES[cf.format], result.format
    if "jsonfeed.org/version/1.1" in cf.notes:
        assert result.format == "jsonfeed11"
    elif "jsonfeed.org/version/1;" in cf.notes or "jsonfeed.org/version/1]" in cf.notes:
        assert result.format == "jsonfeed10"
    assert len(result.items) == _expected_count(cf)
    assert result.title
    _check_items(result)
    expected_warning = EXPECTED_WARNINGS.get(cf.path.name)
    if expected_warning is None:
        assert result.warnings == ()
    else:
        assert any(expected_warning in w for w in result.warnings), result.warnings


# first item of each file: title, url, number of media, has an image, author; and
# `text`, a string that must appear (feed title, or first item's title / summary /
# content) -- the non-ASCII ones prove the encoding was read right.
SPEC: dict[str, dict[str, Any]] = {
    "afterdawn_windows1252.xml": {
        "title": "Dell to make significant investment in China",
        "url": "http://www.afterdawn.com/news/article.cfm/2015/09/11/dell-to-make-significant-investment-in-china",
        "media": 1,
        "image": True,
        "author": "Andre Yoskowitz",
    },
    "anchorfm_podcast.xml": {
        "title": "Advocating for our children",
        "url": "https://podcasters.spotify.com/pod/show/lisa-mccoy/episodes/Advocating-for-our-children-e1oq9fb",
        "media": 2,  # m4a enclosure + itunes:image
        "image": True,
        "author": "Lisa McCoy",
    },
    "arxiv_api_query.xml": {
        "title": "Impact of Electron-Electron Cusp on Configuration Interaction Energies",
        "url": "http://arxiv.org/abs/cond-mat/0102536v1",
        "media": 0,
        "image": False,
        "author": "David Prendergast, M. Nolan, Claudia Filippi, Stephen Fahy, J. C. Greer",
    },
    "aws_blog_typepad.xml": {
        "title": "AWS Job: Architect & Designer Position in Turkey",
        "url": "http://aws.typepad.com/aws/2009/01/aws-job-architect-designer-position-in-turkey.html",
        "media": 0,
        "image": False,
        "author": "AWS Editor",
    },
    "bbc_arabic.xml": {
        "title": "مسؤول أمريكي لبي بي سي: تنظيم الدولة الإسلامية يصنع ويستخدم أسلحة كيماوية في العراق وسوريا",
        "url": "http://www.bbc.com/arabic/middleeast/2015/09/150910_usa_official_is_chemical_weapons",
        "media": 0,
        "image": False,
        "author": "BBC Arabic",  # inherited from the feed's <author>
        "text": "الصفحة الرئيسية",
    },
    "blogger_4fsodonline.atom": {
        "title": "4FSOD Documentary: Bloopers and Stuff",
        "url": "http://4fsodonline.blogspot.com/2007/12/4fsod-documentary-bloopers-and-stuff.html",
        "media": 1,  # rel=enclosure video
        "image": False,
        "author": "Anthony",
        "text": "<iframe",  # raw HTML kept: no sanitising
    },
    "cnn_topstories.xml": {
        "title": "Fiorina makes top-tier debate lineup alongside Trump, Bush",
        "url": "http://rss.cnn.com/c/35492/f/676961/s/49bf6921/sc/7/l/0L0Scnn0N0C20A150C0A90C10A0Cpolitics0Ccnn"
        "0Ereagan0Edebate0Elineup0Cindex0Bhtml0Deref0Frss0Itopstories/story01.htm",
        "media": 1,  # media:thumbnail and media:content share a URL
        "image": True,
        "author": None,
    },
    "craigslist_rdf.rss": {
        "title": "Bright, Spacious Beautiful Victorian (oakland north / temescal) $4300 3bd 1930ft2",
        "url": "http://sfbay.craigslist.org/eby/apa/6186664607.html",
        "media": 1,  # enc:enclosure
        "image": True,
        "author": None,
    },
    "daringfireball_v1.json": {
        "title": "The Talk Show: ‘I Do Like Throwing a Baby’",
        "url": "https://daringfireball.net/linked/2017/06/26/the-talk-show-195",
        "media": 0,
        "image": False,
        "author": "John Gruber",
    },
    "diggnation_podcast.xml": {
        "title": "The Gang Does RSA",
        "url": "http://revision3.com/toasteddonut/rsa2013/",
        "media": 6,  # mp4 (enclosure = media:content) + 4 thumbnails + itunes:image
        "image": True,
        "author": "Revision3",
    },
    "donthitsave_bom_cr.xml": {
        "title": "Skipping Around",
        "url": "https://donthitsave.com/comic/2019/05/24/skipping-around",
        "media": 0,
        "image": True,  # <img> in the description
        "author": None,
        "text": "speak or spell the word “walk”",
    },
    "dotnet_a10_bom.xml": {
        "title": "Title 5",
        "url": "http://www.example.com/5",  # a10:link
        "media": 0,
        "image": False,
        "author": "John Doe",  # a10:author/a10:name
    },
    "elastic_blog_v11.json": {
        "title": "InfluxDB vs. Graphite for Time Series Data & Metrics Benchmark",
        "url": "https://www.influxdata.com/blog/influxdb-outperforms-graphite-in-time-series-data-metrics-benchmark",
        "media": 0,
        "image": False,
        "author": "Chris Churilo, Fake Author 1",
        "text": "Blog – InfluxData",  # feed title with &#8211; decoded
    },
    "flickr_photos.xml": {
        "title": None,  # <title/>
        "url": "http://www.flickr.com/photos/60537550@N06/20690769394/",
        "media": 2,  # _b.jpg (media:content = enclosure) + _s.jpg thumbnail
        "image": True,
        "author": "ivan6446",
    },
    "ghost_cloudflare_blog.xml": {
        "title": "Privacy-Preserving Compromised Credential Checking",
        "url": "https://blog.cloudflare.com/privacy-preserving-compromised-credential-checking/",
        "media": 1,
        "image": True,
        "author": "Luke Valenta",
    },
    "github_commits.atom": {
        "title": "Merge pull request #402 from albertsun/safer-liquid-migration",
        "url": "https://github.com/cantino/huginn/commit/d0a844662846cf3c83b94c637c1803f03db5a5b0",
        "media": 1,
        "image": True,
        "author": "cantino",
    },
    "github_releases_signer.atom": {
        "title": "1.1.0",
        "url": "https://github.com/skyzyx/signer/releases/tag/1.1.0",  # relative in the file
        "media": 1,
        "image": True,
        "author": "skyzyx",
    },
    "google_alerts.xml": {
        # HTML-escaped <b> highlighting removed; the google.com/url wrapper unwrapped
        "title": "Report offers Prediction of Automotive Slack Market by Top key players like Haldex, "
        "Meritor, Bendix ...",
        "url": "https://www.aglobalmarketresearch.com/report-offers-prediction-of-automotive-slack-market-by-"
        "top-key-players-like-haldex-meritor-bendix-mei-wabco-accuride-stemco-tbk-febi-aydinsan/",
        "media": 0,
        "image": False,
        "author": None,  # <name></name>
    },
    "guardian_world.rss": {
        "title": "Trump State of the Union address promised unity but emphasized discord",
        "url": "https://www.theguardian.com/us-news/2018/jan/31/donald-trump-state-of-the-union-address-unity-discord",
        "media": 2,
        "image": True,
        "author": "David Smith in Washington",
    },
    "heraldsun_rss092.rss": {
        "title": "The First Item",
        "url": "http://www.oreilly.com/example/001.html",
        "media": 1,
        "image": False,
        "author": None,
    },
    "illegally_nested_items.xml": {
        "title": "My Professional Armchair Analysis of CES",
        "url": "http://feedproxy.google.com/~r/ziffdavis/pcmag/dvorak/~3/0O-eUfOYo94/0,2817,2525649,00.asp",
        "media": 0,
        "image": False,  # only feedflare buttons and a 1x1 pixel
        "author": None,
    },
    "inessential_v1.json": {
        "title": "James Dempsey and the Breakpoints Benefit App Camp for Girls",
        "url": "http://inessential.com/2017/06/02/james_dempsey_and_the_breakpoints_benefi",
        "media": 0,
        "image": False,
        "author": "Brent Simmons",  # feed-level author
    },
    "intranet30_iso88591.xml": {
        "title": "SVART MÅNAD - DÖDSOLYCKA i Vetlanda",
        "url": "https://www.retriever-info.com/go/?a=30338&d=00201120180819281555686&p=200108&s=2011&sa=2016177"
        "&u=http%3A%2F%2Fwww.hoglandsnytt.se%2Fsvart-manad-dodsolycka-i-vetlanda%2F&x=33d88e677ce6481d9882de22c76e4234",
        "media": 0,
        "image": False,
        "author": "Höglandsnytt",
    },
    "jsonfeed_3960_v11.json": {
        "title": "Lecker, lecker",
        "url": "https://journal.3960.org/posts/2020-02-21-lecker-lecker/",
        "media": 1,  # image = banner_image
        "image": True,
        "author": "Frank Boës",
        "text": "fboës - Der Blog",
    },
    "jsonfeed_escaped_uris_v11.json": {
        "title": "New Font",
        "url": "https://lukedorny.com/updates/new-font",
        "media": 1,
        "image": True,
        "author": "Author: Luke, most likely.",
    },
    "lemonde_fr.xml": {
        # the file is double-encoded UTF-8 ("imputÃ©"): feedparser repairs this title, ftfy the rest
        "title": "Piratage imputé à la Russie : Poutine mis en cause, Trump minimise",
        "url": "http://www.lemonde.fr/ameriques/article/2017/01/07/donald-trump-baisse-d-un-ton-sur-le-piratage-"
        "impute-a-la-russie_5059121_3222.html?xtor=RSS-3208",
        "media": 1,
        "image": True,
        "author": None,
    },
    "medium_489.rss": {
        "title": "Hodl Hodl closes funding round",
        "url": "https://medium.com/@hodlhodl/hodl-hodl-closes-funding-round-417d97952d42?source=rss-b1f3d322dadf------2",
        "media": 0,
        "image": False,  # only a 1x1 stat pixel
        "author": "Hodl Hodl",
    },
    "movabletype_enclosures.xml": {
        "title": "Rocketboom Tue, 24 Jan 2006 07:50:59 -0600",
        "url": "http://www.rocketboom.com/vlog/archives/2006/01/rb_06_jan_24.html",
        "media": 1,
        "image": True,
        "author": "Rocketboom",
    },
    "natasha_wordpress.xml": {
        "title": "The Easiest Way to Get a URL for your Apple Wallet Passkit Pass",
        "url": "https://www.natashatherobot.com/url-apple-wallet-passkit-pass/",
        "media": 0,
        "image": True,
        "author": "Natasha Murashev",
    },
    "nytimes_homepage.xml": {
        "title": "Putin Led a Complex Cyberattack Scheme to Aid Trump, Report Finds",
        "url": "http://www.nytimes.com/2017/01/06/us/politics/donald-trump-wall-hack-russia.html?partner=rss&emc=rss",
        "media": 1,
        "image": True,
        "author": "MICHAEL D. SHEAR and DAVID E. SANGER",
    },
    "onethingwell_tumblr.rss": {
        "title": "CSVfix",
        "url": "http://onethingwell.org/post/127163643556",
        "media": 0,
        "image": False,
        "author": None,  # empty dc:creator
    },
    "orf_at_rdf.xml": {
        "title": "US-Band New Edition mit Stern auf „Walk of Fame“ geehrt",
        "url": "http://orf.at/stories/2376368/",
        "media": 0,
        "image": False,
        "author": None,
    },
    "osnews_rdf_iso88591.xml": {
        "title": "SailfishOS 2.0 released for early access users",
        "url": "http://www.osnews.com/story/28832/SailfishOS_2_0_released_for_early_access_users",
        "media": 0,
        "image": False,
        "author": None,
    },
    "podigee_episode_type.rss": {
        "title": "Trailer",
        "url": "https://baywatch-berlin.podigee.io/t1-trailer",
        "media": 2,
        "image": True,
        "author": "Klaas Heufer-Umlauf, Thomas Schmitt und Jakob Lundt",
    },
    "prx_podcast_itunes.xml": {
        "title": "Patreon Preview: Behind the Scenes (September 2023)",
        "url": "https://play.prx.org/listen?ge=prx_126_e3dafc45-a202-42d0-a55b-216e733a2d7a"
        "&uf=https%3A%2F%2Ffeeds.feedburner.com%2Fwelcometonightvalepodcast",
        "media": 2,  # mp3 (enclosure = media:content) + itunes:image
        "image": True,
        "author": "Night Vale Presents",
    },
    "qemu_jekyll.atom": {
        "title": "QEMU version 10.1.0 released",
        "url": "https://www.qemu.org/2025/08/26/qemu-10-1-0/",  # relative in the file
        "media": 0,
        "image": False,
        "author": None,
    },
    "reddit_subreddit_atom.xml": {
        "title": "Any reason to keep 1G connections to my servers?",
        "url": "https://ud.reddit.com/r/homelab/comments/157kyrd/any_reason_to_keep_1g_connections_to_my_servers/",
        "media": 0,
        "image": False,
        "author": "/u/Remarkable_Housing61",
    },
    "rsscom_blog_wordpress.xml": {
        "title": "Protected: How to Start a Second Podcast",
        "url": "https://rss.com/blog/how-to-start-a-second-podcast/",
        "media": 0,
        "image": False,
        "author": "brian",
    },
    "slashdot_rdf.xml": {
        "title": "The Prisoner To Be Remade On U.K. TV",
        "url": "http://slashdot.org/article.pl?sid=05/11/19/2014233&from=rss",  # feedburner:origLink
        "media": 0,
        "image": False,  # only a feed-host tracking image
        "author": "Zonk",
    },
    "slickdeals_frontpage.atom": {
        "title": "PC Games: Tomb Raider: Game of the Year $6, Hitman Absolution: Elite Edition $5 & More",
        "url": "http://slickdeals.net/permadeal/130160/green-man-gaming---pc-games-tomb-raider-game-of-the-year-6-"
        "hitman-absolution-elite-edition",
        "media": 0,
        "image": False,
        "author": None,
    },
    "spiegel_de.xml": {
        # double-encoded UTF-8 in the file ("KÃ¶lner"): feedparser repairs this title, ftfy the rest
        "title": "Polizeieinsatz in Kölner Silvesternacht: Alles richtig gemacht. Alles?",
        "url": "http://www.spiegel.de/panorama/justiz/silvester-in-koeln-was-wir-ueber-den-polizeieinsatz-wissen-"
        "und-welche-fragen-offen-sind-a-1128896.html#ref=rss",
        "media": 1,
        "image": True,
        "author": None,
    },
    "stadtfeuerwehr_weiz_rss091.xml": {
        "title": "[19.08.2018 - 07:08 Uhr] Brandmeldeanlagenalarm",
        "url": "http://www.stadtfeuerwehr-weiz.at/einsaetze/einsatz-detail/5220/",
        "media": 0,
        "image": False,
        "author": None,
        "text": "Stadtfeuerwehr Weiz - Einsätze",
    },
    "substack_heated.xml": {
        "title": "A conversation about Keystone XL",
        "url": "https://heated.world/p/a-conversation-about-keystone-xl",
        "media": 1,
        "image": True,
        "author": "Emily Atkin",
    },
    "techcrunch_wordpresscom.xml": {
        "title": "Angie’s List Sets Price Range IPO At $11 To $13 Per Share; Valued At Over $600M",
        "url": "http://techcrunch.com/2011/11/02/angies-list-prices-ipo-at-11-to-13-per-share-valued-at-over-600m/",
        "media": 2,  # the thumbnail (= first media:content) + the author's gravatar
        "image": True,
        "author": "Leena Rao",
    },
    "theomnishow_podcast.rss": {
        "title": "Andrea McVittie, User Experience Designer",
        "url": "https://theomnishow.omnigroup.com/episode/andrea-mcvittie-user-experience-designer/",
        "media": 2,
        "image": True,
        "author": "The Omni Group",
    },
    "theverge_atom.xml": {
        "title": "This is the new Hulu experience with live TV",
        "url": "http://www.theverge.com/ces/2017/1/7/14195588/hulu-live-tv-streaming-internet-ces-2017",
        "media": 0,
        "image": True,  # <img> in the content
        "author": "Chris Welch",
    },
    "yahoo_news.xml": {
        "title": "At ground zero, 9/11 anniversary now both public and private",
        "url": "http://news.yahoo.com/ground-zero-9-11-anniversary-now-both-public-050036418.html",
        "media": 1,
        "image": True,
        "author": None,
    },
    "yandex_windows1251.xml": {
        "title": "В Бузулуке главные стройплощадки – детсад и Ледовый дворец",
        "url": "http://www.oren.ru/news/2743422/",
        "media": 1,
        "image": True,
        "author": None,
        "text": "Новости Оренбурга",
    },
    "youtube_channel_atom.xml": {
        "title": "The Google app: Questions Title",
        "url": "http://www.youtube.com/watch?v=5shykyfmb28",
        "media": 2,  # media:group: the player and the thumbnail
        "image": True,
        "author": "Google",
    },
}


def test_spec_covers_every_corpus_feed() -> None:
    assert sorted(SPEC) == sorted(f.path.name for f in FEEDS)


@pytest.mark.parametrize("name", sorted(SPEC))
def test_first_item(name: str) -> None:
    spec = SPEC[name]
    result = parse_feed((CORPUS / "feeds" / name).read_bytes(), _url_for(name))
    first = result.items[0]
    assert first.title == spec["title"]
    assert first.url == spec["url"]
    assert len(first.media) == spec["media"], first.media
    assert (first.image is not None) == spec["image"], first.image
    assert first.author == spec["author"]
    if "text" in spec:
        haystack = " ".join(filter(None, [result.title, first.title, first.summary, first.content]))
        assert spec["text"] in haystack


# --------------------------------------------------------------------------- details


def _corpus(name: str) -> ParseResult:
    return parse_feed((CORPUS / "feeds" / name).read_bytes(), _url_for(name))


def test_item_fields_rss_podcast() -> None:
    item = _corpus("diggnation_podcast.xml").items[0]
    assert item.key == "18490"  # guid isPermaLink="false"
    assert item.published == datetime(2013, 3, 5, tzinfo=UTC)
    assert item.updated is None  # no fallback onto pubDate
    video = item.media[0]
    assert (video.medium, video.type, video.length) == ("video", "video/mp4", 110879163)
    thumb = item.media[1]
    assert (thumb.medium, thumb.width, thumb.height) == ("image", 1280, 720)
    assert item.image == thumb.url  # media:thumbnail first
    assert item.tags[:2] == ("rsa", "security")
    assert item.extra["duration"] == "820"


def test_item_fields_podcast_extras() -> None:
    item = _corpus("anchorfm_podcast.xml").items[0]
    assert item.extra == {"duration": "00:37:07", "episode": "7", "season": "1", "episode_type": "full"}
    audio = next(m for m in item.media if m.medium == "audio")
    assert (audio.type, audio.length) == ("audio/x-m4a", 36030594)


def test_atom_dates_and_content() -> None:
    item = _corpus("aws_blog_typepad.xml").items[0]
    assert item.published == datetime(2009, 1, 16, 18, 21, tzinfo=UTC)  # 10:21-08:00
    assert item.key == "tag:typepad.com,2003:post-61484736"
    assert item.content is not None
    assert "Late last year an entrepreneur from Turkey" in item.content
    assert item.tags == ("Turkey", "Seattle")


def test_relative_ids_stay_ids() -> None:
    """Reddit's <id>t3_...</id> is an identity, not a link to resolve against the feed URL."""
    assert _corpus("reddit_subreddit_atom.xml").items[0].key == "t3_157kyrd"
    assert _corpus("qemu_jekyll.atom").items[0].key == "/2025/08/26/qemu-10-1-0"


def test_feedburner_orig_link_and_extra() -> None:
    item = _corpus("techcrunch_wordpresscom.xml").items[0]
    assert item.extra["feed_link"] == "http://feedproxy.google.com/~r/Techcrunch/~3/kTeeGj4FnwU/"
    assert item.extra["comments"].endswith("#comments")
    assert item.key == "http://techcrunch.com/?p=446154"


def test_youtube_video_id() -> None:
    item = _corpus("youtube_channel_atom.xml").items[0]
    assert item.extra["youtube_video_id"] == "5shykyfmb28"
    assert item.media[0].medium == "video"
    assert item.image == "https://i2.ytimg.com/vi/5shykyfmb28/hqdefault.jpg"


def test_rdf_enclosure_and_html_title() -> None:
    item = _corpus("craigslist_rdf.rss").items[0]
    assert item.media[0].url == "https://images.craigslist.org/00l0l_fbVZikCjEKO_300x300.jpg"
    assert item.media[0].type == "image/jpeg"
    assert "<sup>" not in (item.title or "")


def test_feed_level_title_and_link() -> None:
    result = _corpus("github_releases_signer.atom")
    assert result.title == "Release notes from signer"
    assert result.link == "https://github.com/skyzyx/signer/releases"
    assert _corpus("qemu_jekyll.atom").link == "https://www.qemu.org/"


def test_wrong_declaration_prefers_utf8() -> None:
    """osnews declares iso-8859-1 but is UTF-8 (itself double-encoded upstream):
    reading it as UTF-8 leaves one level of mojibake instead of two, and the
    mojibake repair (ftfy) undoes that one."""
    result = _corpus("osnews_rdf_iso88591.xml")
    text = " ".join(i.summary or "" for i in result.items)
    assert "Jobs’ life" in text
    assert "Jobsâ€™ life" not in text and "Ã¢Â€Â™" not in text


MOJIBAKE = re.compile("Ã[\u00a0-\u00bf ]|Â[\u00a0 :«»]|â€")


@pytest.mark.parametrize(
    "name", ["lemonde_fr.xml", "spiegel_de.xml", "theverge_atom.xml", "rsscom_blog_wordpress.xml"]
)
def test_double_encoded_text_is_repaired_in_every_field(name: str) -> None:
    """These files hold UTF-8 read as cp1252 once more upstream. feedparser undoes it
    only in the elements that round-trip whole through Latin-1; the rest is repaired
    too, the same way in titles, summaries and contents."""
    result = _corpus(name)
    for item in result.items:
        for field in (item.title, item.summary, item.content, item.author):
            assert not MOJIBAKE.search(field or ""), (item.key, field)


def test_lemonde_reads_as_french() -> None:
    items = _corpus("lemonde_fr.xml").items
    titles = [i.title for i in items]
    assert "Football : Zidane égale le record d’invincibilité en Espagne avec le Real Madrid" in titles
    assert "Côte d’Ivoire : les discussions entre gouvernement et soldats sont différées" in titles
    assert items[2].summary is not None
    assert items[2].summary.startswith("Les éleveurs dénoncent «\u00a0le manque d’information\u00a0»")
    # the repair keeps what was already right: feedparser's repaired titles stay as they were
    assert titles[0] == "Piratage imputé à la Russie : Poutine mis en cause, Trump minimise"


@pytest.mark.parametrize(
    "text",
    [
        "plain ASCII & <b>markup</b> &amp; entities",
        "“curly quotes”, ‘single’ — and – dashes…",
        "Größe ½ naïve café «guillemets» façade",
        "São Paulo, Ærøskøbing, Ångström, Œuvre",
        "Ελληνικά, русский, العربية, 日本語, emoji 💡",
        "&Atilde;&copy; stays an entity",
    ],
)
def test_repair_leaves_normal_text_alone(text: str) -> None:
    from sources._common import repair_text

    assert repair_text(text) == text


# --------------------------------------------------------------------------- encodings

LATIN1_DOC = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>Einsätze</title>'
    "<item><title>Größe</title><link>http://a.example/1</link></item></channel></rss>"
).encode("iso-8859-1")


def test_content_type_charset_is_honoured() -> None:
    result = parse_feed(LATIN1_DOC, "http://a.example/feed", {"Content-Type": "text/xml; charset=ISO-8859-1"})
    assert result.title == "Einsätze"
    assert result.items[0].title == "Größe"
    assert result.warnings == ()


def test_undeclared_latin1_falls_back_with_warning() -> None:
    result = parse_feed(LATIN1_DOC, "http://a.example/feed")
    assert result.items[0].title == "Größe"
    assert result.warnings  # declared nothing, not UTF-8: feedparser says so


def test_header_charset_beats_the_declaration() -> None:
    body = (CORPUS / "feeds" / "yandex_windows1251.xml").read_bytes()
    result = parse_feed(
        body, "http://www.oren.ru/rss", {"content-type": "application/rss+xml; charset=windows-1251"}
    )
    assert result.items[0].title == SPEC["yandex_windows1251.xml"]["title"]


def test_utf16_with_bom() -> None:
    doc = (
        '<?xml version="1.0" encoding="utf-16"?><rss version="2.0"><channel><title>Ü</title>'
        "<item><title>ä</title><link>/x</link></item></channel></rss>"
    ).encode("utf-16")
    result = parse_feed(doc, "https://a.example/feed")
    assert result.title == "Ü"
    assert result.items[0].url == "https://a.example/x"


def test_leading_whitespace_and_bom() -> None:
    doc = (
        b"\xef\xbb\xbf\r\n  <?xml version='1.0'?>"
        b"<rss version='2.0'><channel><item><title>t</title></item></channel></rss>"
    )
    result = parse_feed(doc, "https://a.example/feed")
    assert [i.title for i in result.items] == ["t"]
    assert result.warnings == ()


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("doc", "fmt"),
    [
        (
            b'<?xml version="1.0"?><feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>A</title>'
            b'<entry><title>E</title><link rel="alternate" type="text/html" href="http://ex.org/1"/>'
            b"<id>tag:ex.org,2004:1</id><issued>2004-01-01T00:00:00Z</issued></entry></feed>",
            "atom03",
        ),
        (
            b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            b'xmlns="http://my.netscape.com/rdf/simple/0.9/"><channel><title>M</title><link>http://m.org/</link>'
            b"</channel><item><title>I</title><link>http://m.org/1</link></item></rdf:RDF>",
            "rss090",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
            b'"http://my.netscape.com/publish/formats/rss-0.91.dtd">'
            b'<rss version="0.91"><channel><title>N</title>'
            b"<item><title>I</title><link>http://n.org/1</link></item></channel></rss>",
            "rss091",
        ),
    ],
)
def test_old_formats(doc: bytes, fmt: str) -> None:
    result = parse_feed(doc, "http://ex.org/feed")
    assert result.format == fmt
    assert len(result.items) == 1
    assert result.items[0].url is not None


def test_atom_relative_links_in_content_resolved_not_sanitised() -> None:
    doc = (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
        b'<entry><id>urn:x:1</id><title>E</title><link href="/post/1"/>'
        b'<content type="html">&lt;a href="/a"&gt;a&lt;/a&gt;&lt;script&gt;x()&lt;/script&gt;'
        b'&lt;img src="img/p.png"&gt;</content></entry></feed>'
    )
    item = parse_feed(doc, "https://blog.example/feeds/atom.xml").items[0]
    assert item.url == "https://blog.example/post/1"
    assert item.content is not None
    assert 'href="https://blog.example/a"' in item.content
    assert "<script>" in item.content  # lossless: channels sanitise
    assert item.image == "https://blog.example/feeds/img/p.png"


def test_duplicate_guids_keep_the_first() -> None:
    doc = (
        b'<rss version="2.0"><channel><title>T</title>'
        b"<item><guid>1</guid><title>a</title></item><item><guid>1</guid><title>b</title></item>"
        b"</channel></rss>"
    )
    result = parse_feed(doc, "https://a.example/feed")
    assert [i.title for i in result.items] == ["a"]
    assert any("repeating" in w for w in result.warnings)


def test_items_without_identity_get_a_content_hash_key() -> None:
    doc = b'<rss version="2.0"><channel><item><description>only text</description></item></channel></rss>'
    (item,) = parse_feed(doc, "https://a.example/feed").items
    assert item.key.startswith("sha1:")


# --------------------------------------------------------------------------- hostile / broken input

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ELEMENT lolz (#PCDATA)>
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>&lol9;</title>
<item><title>&lol9;</title><link>http://x.example/1</link><description>&lol9;</description></item>
</channel></rss>"""


def _longest_text(result: ParseResult) -> int:
    texts: list[str | None] = [result.title]
    for item in result.items:
        texts += [item.title, item.summary, item.content]
    return max((len(t) for t in texts if t), default=0)


def _assert_entity_warning(result: ParseResult) -> None:
    assert any("ENTITY" in w for w in result.warnings), result.warnings


def test_billion_laughs_is_defused() -> None:
    result = parse_feed(BILLION_LAUGHS, "http://x.example/feed")
    _assert_entity_warning(result)
    assert _longest_text(result) < 1000
    assert [i.url for i in result.items] == ["http://x.example/1"]  # the rest still parses


def test_quadratic_blowup_is_defused() -> None:
    big = b"A" * 50_000
    doc = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "' + big + b'">]><rss version="2.0"><channel>'
        b"<item><title>t</title><description>" + b"&a;" * 20_000 + b"</description></item></channel></rss>"
    )
    result = parse_feed(doc, "http://x.example/feed")
    _assert_entity_warning(result)
    assert _longest_text(result) < 200_000  # expanded, the description would be 1 GB


def test_external_entities_are_not_fetched() -> None:
    doc = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<rss version="2.0"><channel><item><title>&xxe;</title><link>http://a.example/</link></item>'
        b"</channel></rss>"
    )
    result = parse_feed(doc, "http://a.example/feed")
    _assert_entity_warning(result)
    assert "root:" not in (result.items[0].title or "")


def test_doctype_without_entities_is_left_alone() -> None:
    doc = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ELEMENT rss ANY>]><rss version="2.0"><channel>'
        b"<item><title>t</title></item></channel></rss>"
    )
    result = parse_feed(doc, "http://a.example/feed")
    assert not any("ENTITY" in w for w in result.warnings)
    assert len(result.items) == 1


@pytest.mark.parametrize("body", [b"", b"   \r\n\t", b"\xef\xbb\xbf"])
def test_empty_body(body: bytes) -> None:
    result = parse_feed(body, "http://a.example/feed")
    assert result.items == ()
    assert result.warnings


def test_html_page_is_not_a_feed() -> None:
    page = (CORPUS / "pages").glob("*.html")
    body = next(iter(sorted(page))).read_bytes()
    result = parse_feed(body, "http://a.example/", {"Content-Type": "text/html; charset=utf-8"})
    assert result.items == ()
    assert result.format == "unknown"
    assert result.warnings


def test_garbage_bytes() -> None:
    body = bytes(range(256)) * 20
    result = parse_feed(body, "http://a.example/feed")
    assert result.items == ()
    assert result.warnings


def test_truncated_feed_gives_partial_items() -> None:
    body = (CORPUS / "feeds" / "guardian_world.rss").read_bytes()
    result = parse_feed(body[: len(body) // 2], "https://www.theguardian.com/us/rss")
    assert 0 < len(result.items) < 55
    assert result.format == "rss20"
    assert any("well-formed" in w for w in result.warnings)
    assert result.items[0].title == SPEC["guardian_world.rss"]["title"]
    _check_items(result)


# --------------------------------------------------------------------------- JSON Feed


def test_json_feed_minimal_items() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "T",
        "items": [
            {"id": 1},
            {"id": "2", "url": "/p/2", "content_text": "a < b"},
            {
                "id": "3",
                "title": "Tom &amp; Jerry",
                "summary": "x & y",
                "date_published": "2024-05-01T10:00:00+02:00",
                "attachments": [
                    {"url": "https://cdn.example/e.mp3", "mime_type": "audio/mpeg", "size_in_bytes": 12}
                ],
            },
            "not an object",
            {},
        ],
    }
    body = json.dumps(doc).encode()
    result = parse_feed(body, "https://site.example/feed.json")
    assert result.format == "jsonfeed11"
    assert [i.key for i in result.items] == ["1", "2", "3"]
    one, two, three = result.items
    assert one == Item(key="1")
    assert two.url == "https://site.example/p/2"
    assert two.content == "a &lt; b"  # text becomes HTML
    assert three.title == "Tom & Jerry"
    assert three.summary == "x &amp; y"
    assert three.published == datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert three.media[0].medium == "audio"
    assert three.media[0].length == 12
    assert any("skipped 2" in w for w in result.warnings)


def test_json_feed_1_0_author_and_external_url() -> None:
    body = (
        b'{"version": "https://jsonfeed.org/version/1", "title": "T", "author": {"name": "Feed Author"},'
        b' "home_page_url": "https://site.example/",'
        b' "items": [{"id": "a", "external_url": "https://elsewhere.example/x", "content_html": "<p>hi</p>",'
        b'  "image": "/i.png", "tags": ["x", "y", "x"]}]}'
    )
    result = parse_feed(body, "https://site.example/feed.json")
    assert result.format == "jsonfeed10"
    assert result.link == "https://site.example/"
    (item,) = result.items
    assert item.author == "Feed Author"
    assert item.url == "https://elsewhere.example/x"
    assert item.image == "https://site.example/i.png"
    assert item.tags == ("x", "y")


@pytest.mark.parametrize(
    "body", [b'{"foo": [1, 2, 3]}', b"[1, 2]", b'{"version": ', b'{"version": "https://example.com/v1"}']
)
def test_json_that_is_not_a_json_feed(body: bytes) -> None:
    result = parse_feed(body, "https://a.example/feed.json")
    assert result.items == ()
    assert result.format == "unknown"
    assert result.warnings


def test_deeply_nested_json_does_not_raise() -> None:
    result = parse_feed(b"[" * 100_000 + b"]" * 100_000, "https://a.example/feed.json")
    assert result.items == ()
    assert result.warnings


# --------------------------------------------------------------------------- the full shared corpus

SHARED_FEEDS = [f for f in load_manifest(SHARED_CORPUS, required=False) if f.kind == "feeds"]


@pytest.mark.skipif(not SHARED_FEEDS, reason=SHARED_CORPUS_ABSENT)
@pytest.mark.parametrize("cf", SHARED_FEEDS or [None], ids=[f.path.name for f in SHARED_FEEDS] or ["none"])
def test_shared_corpus_counts(cf: CorpusFile) -> None:
    result = _parse(cf)
    assert result.format in FAMILIES[cf.format]
    assert len(result.items) == _expected_count(cf)
    _check_items(result)
