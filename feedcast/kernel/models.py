"""The shared models: the only values that cross folder boundaries.

``sources/`` turns bytes into :class:`ParseResult` (a list of :class:`Item`),
the store keeps them, later stages render them. Everything here is a frozen
dataclass: cheap to create, safe to share between threads.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

__all__ = [
    "COMPOSED_KINDS",
    "COMPOSED_STATUSES",
    "DELIVERY_STATUSES",
    "SUBSCRIBER_STATUSES",
    "Attachment",
    "Automation",
    "Availability",
    "Button",
    "CampaignInfo",
    "Card",
    "ChannelConfig",
    "ComposedCampaign",
    "ComposedMessage",
    "ComposedModule",
    "DeliveryUpdate",
    "EventKind",
    "FeedLink",
    "InboundEvent",
    "Item",
    "Media",
    "Message",
    "Module",
    "NewInbound",
    "NewSubscriber",
    "ParseResult",
    "PendingDelivery",
    "PollOutcome",
    "ProviderCall",
    "QueuedItem",
    "Source",
    "SourceKind",
    "Subscriber",
    "Upload",
    "Variant",
]


class SourceKind(enum.StrEnum):
    FEED = "feed"
    PAGE = "page"
    CATALOGUE = "catalogue"


class Availability(enum.StrEnum):
    IN_STOCK = "in_stock"
    OUT_OF_STOCK = "out_of_stock"
    PREORDER = "preorder"
    BACKORDER = "backorder"


class EventKind(enum.StrEnum):
    NEW = "new"
    CHANGED = "changed"
    PRICE_DROP = "price_drop"
    BACK_IN_STOCK = "back_in_stock"


@dataclass(frozen=True, slots=True)
class Media:
    """An image, video, audio or file attached to an item (enclosure, media:content...)."""

    url: str
    medium: str = "image"  # image | video | audio | file
    type: str | None = None  # MIME type when known
    length: int | None = None  # bytes, when the source says
    width: int | None = None
    height: int | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Variant:
    """One purchasable variant of a product (size, colour...)."""

    id: str
    title: str | None = None
    sku: str | None = None
    gtin: str | None = None
    price: Decimal | None = None
    sale_price: Decimal | None = None
    availability: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a source: a post, an episode, a product.

    ``key`` is the stable identity inside its source (guid / id, else canonical link,
    else a content hash); see :func:`sources._common.item_key`.
    HTML fields (``summary``, ``content``) are kept as the source gave them
    (lossless); channels sanitise when they render.
    """

    key: str
    title: str | None = None
    url: str | None = None
    summary: str | None = None
    content: str | None = None
    image: str | None = None
    media: tuple[Media, ...] = ()
    author: str | None = None
    published: datetime | None = None  # timezone-aware UTC
    updated: datetime | None = None  # timezone-aware UTC
    tags: tuple[str, ...] = ()
    # products
    price: Decimal | None = None  # regular price
    sale_price: Decimal | None = None  # current price when on sale
    currency: str | None = None  # ISO 4217
    availability: str | None = None  # an Availability value
    sku: str | None = None
    gtin: str | None = None
    mpn: str | None = None
    brand: str | None = None
    group_id: str | None = None  # Merchant item_group_id / parent product
    variants: tuple[Variant, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def effective_price(self) -> Decimal | None:
        """What a buyer pays now: the sale price when there is one."""
        return self.sale_price if self.sale_price is not None else self.price

    def content_hash(self) -> str:
        """A digest of everything a subscriber could see; changes mean 'changed'."""
        payload = {
            "title": self.title,
            "url": self.url,
            "summary": self.summary,
            "content": self.content,
            "image": self.image,
            "media": [m.url for m in self.media],
            "price": _str_or_none(self.price),
            "sale_price": _str_or_none(self.sale_price),
            "currency": self.currency,
            "availability": self.availability,
            "variants": [
                [v.id, _str_or_none(v.price), _str_or_none(v.sale_price), v.availability]
                for v in self.variants
            ],
        }
        raw = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.blake2b(raw.encode("utf-8"), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class FeedLink:
    """A feed advertised by a page (``<link rel="alternate" type="application/rss+xml">``)."""

    url: str
    type: str  # rss | atom | json
    title: str | None = None


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What a parser made of one document. Parsers never raise on messy input:
    they return what they could with ``warnings`` saying what was wrong
    (feedparser's *bozo* idea)."""

    kind: SourceKind
    format: str  # rss20, atom10, rdf, jsonfeed, merchant-rss, shopify-json, sitemap, html...
    items: tuple[Item, ...] = ()
    title: str | None = None
    link: str | None = None  # the site the document belongs to
    warnings: tuple[str, ...] = ()
    # further documents of the same source to fetch and merge: pagination
    # (Shopify, WooCommerce) and child sitemaps of a sitemap index
    next_urls: tuple[str, ...] = ()
    # feeds a page advertises (autodiscovery); empty for non-pages
    feeds: tuple[FeedLink, ...] = ()

    @classmethod
    def gathered(
        cls,
        kind: SourceKind,
        format: str,
        items: Iterable[Item],
        warnings: Iterable[str],
        *,
        title: str | None = None,
        link: str | None = None,
        next_urls: tuple[str, ...] = (),
        feeds: tuple[FeedLink, ...] = (),
    ) -> ParseResult:
        """The result of a parser from what it gathered as it went (its lists kept as
        tuples)."""
        return cls(kind, format, tuple(items), title, link, tuple(warnings), next_urls, feeds)


def _str_or_none(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


@dataclass(frozen=True, slots=True)
class Source:
    """A registered content source, as the store keeps it."""

    id: int
    name: str
    url: str  # what we poll (a discovered feed replaces a page URL)
    added_url: str | None = None  # the URL as registered
    kind: str | None = None  # SourceKind value; None until detected
    format: str | None = None
    site_url: str | None = None  # the page a feed was discovered on
    title: str | None = None
    every: timedelta = timedelta(minutes=15)
    backfill: int = 0
    selectors: Mapping[str, str] | None = None
    status: str = "active"  # active | paused | gone
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    error_count: int = 0
    last_error: str | None = None
    last_status: int | None = None
    last_polled_at: datetime | None = None
    last_success_at: datetime | None = None
    next_poll_at: datetime | None = None
    baseline_done: bool = False
    created_at: datetime | None = None
    item_count: int = 0
    # sitemap catalogues: item key -> lastmod already stored, so only new or
    # changed product pages are fetched; loaded by the store on demand
    known: Mapping[str, datetime | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What one poll of one source produced; the store turns it into rows."""

    source_id: int
    url: str  # the URL requested
    started_at: datetime
    duration: float  # seconds
    outcome: str  # ok | not_modified | unchanged | error | gone | rate_limited | blocked
    status: int | None = None  # HTTP status of the main document
    items: tuple[Item, ...] | None = None  # None when nothing was parsed
    kind: str | None = None
    format: str | None = None
    title: str | None = None
    link: str | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None
    bytes: int = 0  # body bytes after decompression, all documents of this poll
    documents: int = 0  # HTTP requests made
    sent_etag: str | None = None
    sent_last_modified: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    new_url: str | None = None  # permanent redirect or discovered feed
    site_url: str | None = None
    retry_after: float | None = None
    backlog: int = 0  # product pages of a sitemap left for the next poll

    @property
    def succeeded(self) -> bool:
        return self.outcome in {"ok", "not_modified", "unchanged"}


# --------------------------------------------------------------------------- messages
#
# A layout renders items into Messages made of content modules (the vocabulary:
# text, text + buttons, image, video, audio, file, cards); each channel turns a
# Message into provider calls (Telegram sendPhoto with caption and keyboard,
# Messenger templates, an email...). See layouts/ and channels/.

MODULE_KINDS = ("text", "image", "video", "audio", "file", "cards")


@dataclass(frozen=True, slots=True)
class Button:
    """A link button (``url``), or a reply button (``reply``: the payload a Telegram
    callback or a Messenger postback brings back to the inbox, recorded as a click)."""

    title: str
    url: str = ""
    reply: str | None = None


@dataclass(frozen=True, slots=True)
class Upload:
    """A local file of a composed message, kept in the store (``uploads``) by its SHA-256
    so every host sends the same bytes; providers get it uploaded their own way."""

    sha256: str
    name: str  # the file name recipients see
    content_type: str
    size: int  # bytes

    @property
    def ref(self) -> str:
        """How a provider call names the file until the channel uploads it."""
        return f"attach://{self.sha256}"


@dataclass(frozen=True, slots=True)
class Card:
    """One element of a carousel (Messenger generic template, Telegram media group)."""

    title: str
    subtitle: str | None = None
    image: str | None = None
    url: str | None = None
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True, slots=True)
class Module:
    """One content block. ``text`` is in the markup of the message's format
    (Telegram HTML, plain text for Messenger, HTML for email, mrkdwn for Slack...)."""

    kind: str  # one of MODULE_KINDS
    text: str | None = None
    url: str | None = None  # the media URL of image / video / audio / file
    buttons: tuple[Button, ...] = ()
    cards: tuple[Card, ...] = ()
    upload: Upload | None = None  # a local file instead of ``url`` (composed messages)
    alt: str | None = None  # an image's alternative text (email)
    name: str | None = None  # a file's name as recipients see it


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file an email carries: shown inline (an image the HTML names by ``cid:``) or
    attached."""

    upload: Upload
    inline: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    """What a layout rendered for one format: modules in order, plus the items it shows."""

    format: str  # telegram | messenger | email | slack | discord | json
    modules: tuple[Module, ...]
    subject: str | None = None  # email subject; a title for the other formats
    item_keys: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()  # email: the files of a composed message
    albums: bool = False  # images and videos that follow each other go as one album (Telegram)


COMPOSED_KINDS = ("text", "image", "video", "audio", "file")
COMPOSED_STATUSES = ("draft", "scheduled", "sending", "sent", "cancelled", "stopped")


@dataclass(frozen=True, slots=True)
class ComposedModule:
    """One content module of a marketer's message file, as written: ``text`` and
    ``caption`` in the composer's markup (:mod:`layouts.markup`), the medium by ``url``
    or as a stored ``upload``."""

    kind: str  # one of COMPOSED_KINDS
    text: str | None = None  # a text module's text
    url: str | None = None
    upload: Upload | None = None
    caption: str | None = None
    alt: str | None = None
    name: str | None = None
    buttons: tuple[Button, ...] = ()
    size: int | None = None  # bytes of a URL's medium, when its server said


@dataclass(frozen=True, slots=True)
class ComposedMessage:
    """A message file: its modules in order, and the subject of its emails."""

    modules: tuple[ComposedModule, ...]
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One request to a provider, exactly as it will be sent (minus credentials)."""

    method: str  # Telegram method, "messages" for Messenger, "smtp" for email, "POST" for webhooks
    body: Mapping[str, Any]


# --------------------------------------------------------------------------- audience & delivery

SUBSCRIBER_STATUSES = ("active", "unsubscribed", "unreachable", "bounced")
DELIVERY_STATUSES = ("pending", "sent", "failed", "skipped")


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """A registered channel: its kind and settings (secrets only as ``env:VAR``)."""

    id: int
    name: str
    kind: str
    settings: Mapping[str, Any]
    status: str = "active"
    last_error: str | None = None
    last_error_at: datetime | None = None
    created_at: datetime | None = None
    subscribers: int = 0  # active ones


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    channel: str
    recipient: str  # chat id, PSID, email address...
    status: str = "active"
    tags: tuple[str, ...] = ()
    name: str | None = None
    status_reason: str | None = None
    last_inbound_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    locale: str | None = None  # the language the person reads (it, pt_BR), when known


@dataclass(frozen=True, slots=True)
class NewSubscriber:
    recipient: str
    tags: tuple[str, ...] = ()
    name: str | None = None
    last_inbound_at: datetime | None = None
    locale: str | None = None


@dataclass(frozen=True, slots=True)
class NewInbound:
    """One inbound event to record in ``inbound`` (a message, a command, a postback...)."""

    channel: str
    sender: str  # chat id, PSID ("" when the event has none)
    kind: str
    provider_id: str | None  # what de-duplicates it: a Telegram update id, a Messenger mid
    payload: Mapping[str, Any] | None = None  # the raw event, as the provider sent it
    text: str | None = None
    received_at: datetime | None = None
    locale: str | None = None  # the language the sender's app says they read, when it says


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """A recorded inbound event (a row of ``inbound``) and its channel's kind."""

    id: int
    channel: str
    channel_kind: str
    sender: str
    kind: str
    provider_id: str | None
    payload: Mapping[str, Any]
    received_at: datetime
    action: str | None = None


@dataclass(frozen=True, slots=True)
class Automation:
    id: int
    name: str
    channel: str
    layout: str
    sources: tuple[str, ...]
    audience: str | None = None  # a subscriber tag; None: every active subscriber
    on_new: bool = False
    max_items: int | None = None  # None: the layout's default
    events: tuple[str, ...] = ("new",)
    backfill: int = 0
    message_tag: str | None = None  # Messenger: permitted tag outside the 24-hour window
    timezone: str = "UTC"
    locale: str = "en"
    status: str = "active"
    since: datetime | None = None  # items' events from this time on are this automation's
    created_at: datetime | None = None
    last_campaign_at: datetime | None = None
    schedule: str = "manual"  # cron | every | on-new | manual
    cron: str | None = None
    every: timedelta | None = None
    min_items: int = 1
    where: str | None = None  # a DuckDB boolean expression over the item columns
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    track_clicks: bool = False  # item links go through feedcast web's /c/ (feedcast.tracking)


@dataclass(frozen=True, slots=True)
class QueuedItem:
    """An item waiting for an automation's next campaign, and the event that queued it."""

    item_id: int
    item: Item
    event: str
    event_at: datetime
    old_price: Decimal | None = None
    new_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """A delivery still to make, with the subscriber as it is now."""

    id: int
    subscriber_id: int
    recipient: str
    subscriber_status: str
    name: str | None = None
    last_inbound_at: datetime | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """The outcome of one delivery, to record."""

    id: int
    status: str  # a DELIVERY_STATUSES value
    attempts: int
    error: str | None = None
    error_code: str | None = None
    provider_message_id: str | None = None
    sent_at: datetime | None = None
    calls_sent: int = 0
    # what happens to the subscriber: a new status (unsubscribed, unreachable, bounced)
    # or a new recipient id (a Telegram group migrated to a supergroup)
    subscriber_id: int | None = None
    subscriber_status: str | None = None
    new_recipient: str | None = None


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    id: int
    automation: str | None
    channel: str
    channel_kind: str
    layout: str
    format: str
    status: str  # sending | sent | stopped
    created_at: datetime
    items: int
    messages: int
    calls: int
    recipients: int
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    pending: int = 0
    error: str | None = None
    finished_at: datetime | None = None
    trigger: str = "manual"
    kind: str = "automated"  # automated | composed
    composed: str | None = None  # the composed campaign's name
    locale: str | None = None  # the language its messages were rendered in


@dataclass(frozen=True, slots=True)
class ComposedCampaign:
    """A marketer's composed campaign: one message to the audience of some channels, sent
    on ``campaign send`` or at ``send_at``. Each channel (and each language of its
    audience) gets a campaign of its own in ``campaigns``, with its deliveries."""

    id: int
    name: str
    channels: tuple[str, ...]
    message: ComposedMessage
    audience: str | None = None  # a subscriber tag; None: every active subscriber
    locale: str | None = None  # None: each channel's (``en`` when it has none)
    timezone: str = "UTC"  # the zone ``send_at_local`` is in
    send_at: datetime | None = None  # the instant, UTC; None: when ``campaign send`` says
    send_at_local: str | None = None  # the local date and time as written
    message_tag: str | None = None  # Messenger: a permitted tag outside the 24-hour window
    status: str = "draft"  # a COMPOSED_STATUSES value
    source_file: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
