"""The store's schema: every migration in one ordered list (:data:`MIGRATIONS`).

A migration is a number, a name and its SQL statements; :func:`migrate` applies those
a file has not had yet, each in a transaction of its own, and records it in
``schema_migrations`` (version, name, applied_at). The numbers, names and SQL of the
migrations already published never change: files created by an older feedcast open
with their schema as it is and take only the steps they have not had. A change to the
schema is a new step at the end of the list. The views are what analysts read
(docs/schema.md): columns may be added, never renamed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import duckdb

__all__ = ["ACTIVITY_SQL", "MIGRATIONS", "Migration", "migrate"]

log = logging.getLogger(__name__)

# ----------------------------------------------------------------- 1: sources and items

_SEQUENCES_1 = """
    CREATE SEQUENCE sources_id_seq START 1;
    CREATE SEQUENCE items_id_seq START 1;
    CREATE SEQUENCE item_events_id_seq START 1;
    CREATE SEQUENCE fetches_id_seq START 1;
"""

_SOURCES = """
    CREATE TABLE sources (
        id              BIGINT PRIMARY KEY DEFAULT nextval('sources_id_seq'),
        name            VARCHAR NOT NULL UNIQUE,
        url             VARCHAR NOT NULL,
        added_url       VARCHAR NOT NULL,
        site_url        VARCHAR,
        kind            VARCHAR,
        format          VARCHAR,
        title           VARCHAR,
        every_seconds   INTEGER NOT NULL DEFAULT 900,
        backfill        INTEGER NOT NULL DEFAULT 0,
        selectors       JSON,
        status          VARCHAR NOT NULL DEFAULT 'active',
        etag            VARCHAR,
        last_modified   VARCHAR,
        body_hash       VARCHAR,
        error_count     INTEGER NOT NULL DEFAULT 0,
        last_error      VARCHAR,
        last_status     INTEGER,
        last_polled_at  TIMESTAMPTZ,
        last_success_at TIMESTAMPTZ,
        next_poll_at    TIMESTAMPTZ,
        baseline_done   BOOLEAN NOT NULL DEFAULT false,
        created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
    );
"""

_ITEMS = """
    CREATE TABLE items (
        id            BIGINT PRIMARY KEY,
        source_id     BIGINT NOT NULL,
        key           VARCHAR NOT NULL,
        title         VARCHAR,
        url           VARCHAR,
        summary       VARCHAR,
        content       VARCHAR,
        image         VARCHAR,
        media         JSON,
        author        VARCHAR,
        published_at  TIMESTAMPTZ,
        updated_at    TIMESTAMPTZ,
        tags          VARCHAR[],
        price         DECIMAL(18, 4),
        sale_price    DECIMAL(18, 4),
        currency      VARCHAR,
        availability  VARCHAR,
        sku           VARCHAR,
        gtin          VARCHAR,
        mpn           VARCHAR,
        brand         VARCHAR,
        group_id      VARCHAR,
        variants      JSON,
        extra         JSON,
        content_hash  VARCHAR NOT NULL,
        position      INTEGER,
        first_seen_at TIMESTAMPTZ NOT NULL,
        last_seen_at  TIMESTAMPTZ NOT NULL,
        changed_at    TIMESTAMPTZ,
        UNIQUE (source_id, key)
    );
"""

_ITEM_EVENTS = """
    CREATE TABLE item_events (
        id               BIGINT PRIMARY KEY DEFAULT nextval('item_events_id_seq'),
        item_id          BIGINT NOT NULL,
        source_id        BIGINT NOT NULL,
        fetch_id         BIGINT,
        event            VARCHAR NOT NULL,
        occurred_at      TIMESTAMPTZ NOT NULL,
        old_price        DECIMAL(18, 4),
        new_price        DECIMAL(18, 4),
        currency         VARCHAR,
        old_availability VARCHAR,
        new_availability VARCHAR,
        backfill         BOOLEAN NOT NULL DEFAULT false
    );
"""

_FETCHES = """
    CREATE TABLE fetches (
        id                 BIGINT PRIMARY KEY,
        source_id          BIGINT NOT NULL,
        url                VARCHAR NOT NULL,
        started_at         TIMESTAMPTZ NOT NULL,
        duration_ms        DOUBLE NOT NULL,
        outcome            VARCHAR NOT NULL,
        status             INTEGER,
        bytes              BIGINT NOT NULL DEFAULT 0,
        documents          INTEGER NOT NULL DEFAULT 0,
        sent_etag          VARCHAR,
        sent_last_modified VARCHAR,
        etag               VARCHAR,
        last_modified      VARCHAR,
        kind               VARCHAR,
        format             VARCHAR,
        items              INTEGER,
        new_count          INTEGER NOT NULL DEFAULT 0,
        changed_count      INTEGER NOT NULL DEFAULT 0,
        warnings           VARCHAR[],
        error              VARCHAR
    );
"""

_INDEXES_1 = """
    CREATE INDEX item_events_at ON item_events (occurred_at);
    CREATE INDEX fetches_source ON fetches (source_id, started_at);
"""

# ----------------------------------------------------------------- 2: the sending side

_SEQUENCES_2 = """
    CREATE SEQUENCE channels_id_seq START 1;
    CREATE SEQUENCE subscribers_id_seq START 1;
    CREATE SEQUENCE subscription_events_id_seq START 1;
    CREATE SEQUENCE automations_id_seq START 1;
    CREATE SEQUENCE campaigns_id_seq START 1;
    CREATE SEQUENCE deliveries_id_seq START 1;
    CREATE SEQUENCE scheduled_sends_id_seq START 1;
"""

_CHANNELS = """
    CREATE TABLE channels (
        id            BIGINT PRIMARY KEY DEFAULT nextval('channels_id_seq'),
        name          VARCHAR NOT NULL UNIQUE,
        kind          VARCHAR NOT NULL,
        settings      JSON NOT NULL,
        status        VARCHAR NOT NULL DEFAULT 'active',
        last_error    VARCHAR,
        last_error_at TIMESTAMPTZ,
        created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
    );
"""

_SUBSCRIBERS = """
    CREATE TABLE subscribers (
        id              BIGINT PRIMARY KEY DEFAULT nextval('subscribers_id_seq'),
        channel_id      BIGINT NOT NULL,
        recipient       VARCHAR NOT NULL,
        name            VARCHAR,
        tags            VARCHAR[] NOT NULL DEFAULT [],
        status          VARCHAR NOT NULL DEFAULT 'active',
        status_reason   VARCHAR,
        last_inbound_at TIMESTAMPTZ,
        created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
        UNIQUE (channel_id, recipient)
    );
"""

_SUBSCRIPTION_EVENTS = """
    CREATE TABLE subscription_events (
        id            BIGINT PRIMARY KEY DEFAULT nextval('subscription_events_id_seq'),
        subscriber_id BIGINT NOT NULL,
        channel_id    BIGINT NOT NULL,
        event         VARCHAR NOT NULL,
        source        VARCHAR NOT NULL,
        detail        VARCHAR,
        occurred_at   TIMESTAMPTZ NOT NULL DEFAULT now()
    );
"""

_AUTOMATIONS = """
    CREATE TABLE automations (
        id           BIGINT PRIMARY KEY DEFAULT nextval('automations_id_seq'),
        name         VARCHAR NOT NULL UNIQUE,
        channel_id   BIGINT NOT NULL,
        layout       VARCHAR NOT NULL,
        audience     VARCHAR,
        on_new       BOOLEAN NOT NULL DEFAULT false,
        max_items    INTEGER,
        events       VARCHAR[] NOT NULL DEFAULT ['new'],
        backfill     INTEGER NOT NULL DEFAULT 0,
        message_tag  VARCHAR,
        timezone     VARCHAR NOT NULL DEFAULT 'UTC',
        locale       VARCHAR NOT NULL DEFAULT 'en',
        status       VARCHAR NOT NULL DEFAULT 'active',
        since        TIMESTAMPTZ NOT NULL,
        created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        schedule     VARCHAR NOT NULL DEFAULT 'manual',
        cron         VARCHAR,
        every_seconds INTEGER,
        min_items    INTEGER NOT NULL DEFAULT 1,
        where_sql    VARCHAR,
        next_run_at  TIMESTAMPTZ,
        last_run_at  TIMESTAMPTZ,
        lease_owner  VARCHAR,
        lease_until  TIMESTAMPTZ
    );
"""

_SCHEDULED_SENDS = """
    CREATE TABLE scheduled_sends (
        id            BIGINT PRIMARY KEY DEFAULT nextval('scheduled_sends_id_seq'),
        automation_id BIGINT NOT NULL,
        run_at        TIMESTAMPTZ NOT NULL,
        status        VARCHAR NOT NULL DEFAULT 'pending',
        campaign_id   BIGINT,
        note          VARCHAR,
        created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
        done_at       TIMESTAMPTZ
    );
"""

_AUTOMATION_SOURCES = """
    CREATE TABLE automation_sources (
        automation_id BIGINT NOT NULL,
        source_id     BIGINT NOT NULL,
        PRIMARY KEY (automation_id, source_id)
    );
"""

_CAMPAIGNS = """
    CREATE TABLE campaigns (
        id              BIGINT PRIMARY KEY,
        automation_id   BIGINT,
        automation_name VARCHAR,
        channel_id      BIGINT NOT NULL,
        channel_name    VARCHAR NOT NULL,
        channel_kind    VARCHAR NOT NULL,
        layout          VARCHAR NOT NULL,
        format          VARCHAR NOT NULL,
        trigger         VARCHAR NOT NULL DEFAULT 'manual',
        status          VARCHAR NOT NULL DEFAULT 'sending',
        items           INTEGER NOT NULL,
        messages        INTEGER NOT NULL,
        calls           INTEGER NOT NULL,
        recipients      INTEGER NOT NULL,
        warnings        VARCHAR[],
        error           VARCHAR,
        created_at      TIMESTAMPTZ NOT NULL,
        started_at      TIMESTAMPTZ,
        finished_at     TIMESTAMPTZ
    );
"""

_CAMPAIGN_ITEMS = """
    CREATE TABLE campaign_items (
        campaign_id   BIGINT NOT NULL,
        automation_id BIGINT,
        item_id       BIGINT NOT NULL,
        event         VARCHAR NOT NULL,
        event_at      TIMESTAMPTZ NOT NULL,
        position      INTEGER NOT NULL,
        PRIMARY KEY (campaign_id, item_id)
    );
"""

_CAMPAIGN_CALLS = """
    CREATE TABLE campaign_calls (
        campaign_id BIGINT NOT NULL,
        position    INTEGER NOT NULL,
        message     INTEGER NOT NULL,
        method      VARCHAR NOT NULL,
        body        JSON NOT NULL,
        PRIMARY KEY (campaign_id, position)
    );
"""

_DELIVERIES = """
    CREATE TABLE deliveries (
        id                  BIGINT PRIMARY KEY DEFAULT nextval('deliveries_id_seq'),
        campaign_id         BIGINT NOT NULL,
        subscriber_id       BIGINT NOT NULL,
        recipient           VARCHAR NOT NULL,
        status              VARCHAR NOT NULL DEFAULT 'pending',
        attempts            INTEGER NOT NULL DEFAULT 0,
        calls_sent          INTEGER NOT NULL DEFAULT 0,
        error               VARCHAR,
        error_code          VARCHAR,
        provider_message_id VARCHAR,
        queued_at           TIMESTAMPTZ NOT NULL,
        sent_at             TIMESTAMPTZ,
        updated_at          TIMESTAMPTZ,
        UNIQUE (campaign_id, subscriber_id)
    );
"""

_INDEX_2 = "CREATE INDEX campaign_items_automation ON campaign_items (automation_id, item_id)"

# send_history as first published (migration 5 replaces it)
_SEND_HISTORY_2 = """
    CREATE VIEW send_history AS
        SELECT d.id AS delivery_id, d.campaign_id, c.automation_name AS automation,
               c.channel_name AS channel, c.channel_kind, d.recipient, d.status, d.attempts,
               d.error, d.provider_message_id, d.queued_at, d.sent_at,
               d.subscriber_id, d.error_code, d.calls_sent, d.updated_at,
               c.layout, c.format, c.trigger, c.created_at AS campaign_created_at
        FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id;
"""

# ----------------------------------------------------------------- 3: the audience side

_SEQUENCES_3 = """
    CREATE SEQUENCE inbound_id_seq START 1;
    CREATE SEQUENCE clicks_id_seq START 1;
"""

_INBOUND = """
    CREATE TABLE inbound (
        id            BIGINT PRIMARY KEY DEFAULT nextval('inbound_id_seq'),
        channel_id    BIGINT NOT NULL,
        subscriber_id BIGINT,
        sender        VARCHAR NOT NULL,
        kind          VARCHAR NOT NULL,
        text          VARCHAR,
        payload       JSON,
        provider_id   VARCHAR,
        received_at   TIMESTAMPTZ NOT NULL,
        action        VARCHAR,
        UNIQUE (channel_id, provider_id)
    );
"""

_BOT_REPLIES = """
    CREATE TABLE bot_replies (
        channel_id BIGINT NOT NULL,
        kind       VARCHAR NOT NULL,
        template   VARCHAR,
        enabled    BOOLEAN NOT NULL DEFAULT true,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (channel_id, kind)
    );
"""

_CHANNEL_STATE = """
    CREATE TABLE channel_state (
        channel_id BIGINT NOT NULL,
        key        VARCHAR NOT NULL,
        value      VARCHAR,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (channel_id, key)
    );
"""

_CAMPAIGN_LINKS = """
    CREATE TABLE campaign_links (
        campaign_id BIGINT NOT NULL,
        link        INTEGER NOT NULL,
        url         VARCHAR NOT NULL,
        PRIMARY KEY (campaign_id, link)
    );
"""

_CLICKS = """
    CREATE TABLE clicks (
        id            BIGINT PRIMARY KEY DEFAULT nextval('clicks_id_seq'),
        campaign_id   BIGINT NOT NULL,
        subscriber_id BIGINT NOT NULL,
        delivery_id   BIGINT,
        link          INTEGER NOT NULL,
        url           VARCHAR NOT NULL,
        clicked_at    TIMESTAMPTZ NOT NULL,
        user_agent    VARCHAR
    );
"""

_OPTINS = """
    CREATE TABLE optins (
        token        VARCHAR PRIMARY KEY,
        channel_id   BIGINT NOT NULL,
        recipient    VARCHAR NOT NULL,
        tags         VARCHAR[] NOT NULL DEFAULT [],
        created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        confirmed_at TIMESTAMPTZ
    );
"""

_TRACK_CLICKS = "ALTER TABLE automations ADD COLUMN track_clicks BOOLEAN DEFAULT false"

_INDEX_3 = "CREATE INDEX clicks_campaign ON clicks (campaign_id)"

# ----------------------------------------------------------------- 4: the report views

_CAMPAIGN_REPORT = """
    CREATE VIEW campaign_report AS
    WITH d AS (
        SELECT campaign_id,
               count(*) AS recipients,
               count(*) FILTER (WHERE status = 'sent') AS sent,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status = 'skipped') AS skipped,
               count(*) FILTER (WHERE status = 'pending') AS pending,
               min(queued_at) AS first_queued_at,
               max(coalesce(updated_at, sent_at)) AS last_done_at
        FROM deliveries GROUP BY campaign_id
    ), k AS (
        SELECT campaign_id, count(*) AS clicks, count(DISTINCT subscriber_id) AS unique_clickers
        FROM clicks GROUP BY campaign_id
    ), u AS (
        SELECT c.id AS campaign_id, count(DISTINCT e.subscriber_id) AS unsubscribes_7d
        FROM subscription_events e
        JOIN campaigns c ON c.channel_id = e.channel_id
             AND e.occurred_at >= c.created_at AND e.occurred_at < c.created_at + INTERVAL 7 DAY
        JOIN deliveries dl ON dl.campaign_id = c.id AND dl.subscriber_id = e.subscriber_id
        WHERE e.event = 'unsubscribe'
        GROUP BY c.id
    )
    SELECT c.id AS campaign_id, c.automation_name AS automation, c.channel_name AS channel,
           c.channel_kind, c.created_at, c.items,
           coalesce(d.recipients, 0) AS recipients, coalesce(d.sent, 0) AS sent,
           coalesce(d.failed, 0) AS failed, coalesce(d.skipped, 0) AS skipped,
           coalesce(d.pending, 0) AS pending,
           coalesce(k.clicks, 0) AS clicks, coalesce(k.unique_clickers, 0) AS unique_clickers,
           CASE WHEN coalesce(d.sent, 0) > 0
                THEN coalesce(k.unique_clickers, 0) / d.sent END AS click_rate,
           coalesce(u.unsubscribes_7d, 0) AS unsubscribes_7d,
           epoch(d.last_done_at - d.first_queued_at) AS duration_s,
           c.status, c.trigger, c.layout
    FROM campaigns c
    LEFT JOIN d ON d.campaign_id = c.id
    LEFT JOIN k ON k.campaign_id = c.id
    LEFT JOIN u ON u.campaign_id = c.id;
"""

_SOURCE_HEALTH = """
    CREATE VIEW source_health AS
    WITH f AS (
        SELECT source_id, count(*) AS fetches,
               count(*) FILTER (WHERE outcome = 'not_modified') AS not_modified,
               median(duration_ms) AS median_fetch_ms
        FROM fetches WHERE started_at >= now() - INTERVAL 30 DAY GROUP BY source_id
    ), e AS (
        SELECT source_id, count(*) AS new_items
        FROM item_events
        WHERE event = 'new' AND NOT backfill AND occurred_at >= now() - INTERVAL 30 DAY
        GROUP BY source_id
    )
    SELECT s.name, s.status, s.last_success_at, s.error_count AS consecutive_errors,
           coalesce(f.fetches, 0) AS fetches,
           CASE WHEN f.fetches > 0 THEN f.not_modified / f.fetches END AS ratio_304,
           coalesce(e.new_items, 0) / 30.0 AS items_per_day,
           f.median_fetch_ms, s.last_error, s.last_polled_at, s.kind, s.url
    FROM sources s
    LEFT JOIN f ON f.source_id = s.id
    LEFT JOIN e ON e.source_id = s.id;
"""

# automation_activity: campaign_report rows per automation and UTC day (the view, and the
# report over its own scope of campaigns)
ACTIVITY_SQL = """
    SELECT automation, CAST(timezone('UTC', created_at) AS DATE) AS day,
           count(*) AS campaigns, sum(items)::BIGINT AS items,
           sum(recipients)::BIGINT AS recipients, sum(sent)::BIGINT AS sent,
           sum(failed)::BIGINT AS failed, sum(skipped)::BIGINT AS skipped,
           sum(clicks)::BIGINT AS clicks, sum(unique_clickers)::BIGINT AS unique_clickers,
           sum(unsubscribes_7d)::BIGINT AS unsubscribes_7d
    FROM {relation}
    GROUP BY ALL
"""

_AUTOMATION_ACTIVITY = f"CREATE VIEW automation_activity AS {ACTIVITY_SQL.format(relation='campaign_report')}"

# ----------------------------------------------------------------- 5: tries a crash lost

_LOST_ATTEMPTS = (
    "ALTER TABLE deliveries ADD COLUMN started_at TIMESTAMPTZ",
    "ALTER TABLE deliveries ADD COLUMN lost_attempts INTEGER DEFAULT 0",
)

_SEND_HISTORY_FROM = "\n        FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id"

# send_history with unconfirmed_attempts and possibly_duplicated
_SEND_HISTORY_5 = """
    CREATE OR REPLACE VIEW send_history AS
        SELECT d.id AS delivery_id, d.campaign_id, c.automation_name AS automation,
               c.channel_name AS channel, c.channel_kind, d.recipient, d.status, d.attempts,
               d.error, d.provider_message_id, d.queued_at, d.sent_at,
               d.subscriber_id, d.error_code, d.calls_sent, d.updated_at,
               c.layout, c.format, c.trigger, c.created_at AS campaign_created_at,
               d.started_at,
               coalesce(d.lost_attempts, 0)
                   + CASE WHEN d.status = 'pending' AND d.started_at IS NOT NULL THEN 1 ELSE 0 END
                   AS unconfirmed_attempts,
               d.status = 'sent' AND coalesce(d.lost_attempts, 0) > 0 AS possibly_duplicated
        FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
"""

# ----------------------------------------------------------------- 6: public audiences

_AUDIENCES = """
    CREATE TABLE audiences (
        tag        VARCHAR PRIMARY KEY,
        public     BOOLEAN NOT NULL DEFAULT false,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
"""

# ----------------------------------------------------------------- 7: composed campaigns

_COMPOSED = (
    "CREATE SEQUENCE composed_campaigns_id_seq START 1",
    """
    CREATE TABLE composed_campaigns (
        id            BIGINT PRIMARY KEY DEFAULT nextval('composed_campaigns_id_seq'),
        name          VARCHAR NOT NULL UNIQUE,
        channels      VARCHAR[] NOT NULL,
        audience      VARCHAR,
        message       JSON NOT NULL,
        source_file   VARCHAR,
        locale        VARCHAR,
        timezone      VARCHAR NOT NULL DEFAULT 'UTC',
        send_at       TIMESTAMPTZ,
        send_at_local VARCHAR,
        message_tag   VARCHAR,
        status        VARCHAR NOT NULL DEFAULT 'draft',
        error         VARCHAR,
        created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
        started_at    TIMESTAMPTZ,
        finished_at   TIMESTAMPTZ,
        lease_owner   VARCHAR,
        lease_until   TIMESTAMPTZ
    )
    """,
    """
    CREATE TABLE uploads (
        sha256       VARCHAR PRIMARY KEY,
        name         VARCHAR NOT NULL,
        content_type VARCHAR NOT NULL,
        size         BIGINT NOT NULL,
        created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE upload_chunks (
        sha256 VARCHAR NOT NULL,
        seq    INTEGER NOT NULL,
        data   BLOB NOT NULL,
        PRIMARY KEY (sha256, seq)
    )
    """,
    """
    CREATE TABLE upload_ids (
        channel_id  BIGINT NOT NULL,
        sha256      VARCHAR NOT NULL,
        kind        VARCHAR NOT NULL,
        provider_id VARCHAR NOT NULL,
        created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (channel_id, sha256, kind)
    )
    """,
    "ALTER TABLE campaigns ADD COLUMN kind VARCHAR DEFAULT 'automated'",
    "ALTER TABLE campaigns ADD COLUMN composed_id BIGINT",
    "ALTER TABLE campaigns ADD COLUMN composed_name VARCHAR",
    "ALTER TABLE campaigns ADD COLUMN locale VARCHAR",
    "ALTER TABLE subscribers ADD COLUMN locale VARCHAR",
)

# send_history and campaign_report say which kind of campaign a row is, and its name
_SEND_HISTORY_7 = (
    _SEND_HISTORY_5.rstrip().removesuffix(_SEND_HISTORY_FROM)
    + """,
               coalesce(c.kind, 'automated') AS campaign_kind, c.composed_name AS campaign_name,
               c.locale"""
    + _SEND_HISTORY_FROM
)
_CAMPAIGN_REPORT_7 = _CAMPAIGN_REPORT.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1).replace(
    "c.status, c.trigger, c.layout\n",
    "c.status, c.trigger, c.layout,\n           coalesce(c.kind, 'automated') AS kind, c.composed_name AS campaign_name, c.locale\n",
    1,
)


class Migration(NamedTuple):
    version: int
    name: str  # recorded in schema_migrations.name
    sql: tuple[str, ...]  # run in order, in the migration's transaction


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "sources, items, item_events, fetches",
        (_SEQUENCES_1, _SOURCES, _ITEMS, _ITEM_EVENTS, _FETCHES, _INDEXES_1),
    ),
    Migration(
        2,
        "channels, subscribers, automations, campaigns, deliveries, send_history",
        (
            _SEQUENCES_2,
            _CHANNELS,
            _SUBSCRIBERS,
            _SUBSCRIPTION_EVENTS,
            _AUTOMATIONS,
            _SCHEDULED_SENDS,
            _AUTOMATION_SOURCES,
            _CAMPAIGNS,
            _CAMPAIGN_ITEMS,
            _CAMPAIGN_CALLS,
            _DELIVERIES,
            _INDEX_2,
            _SEND_HISTORY_2,
        ),
    ),
    Migration(
        3,
        "inbound, bot_replies, channel_state, campaign_links, clicks, optins",
        (
            _SEQUENCES_3,
            _INBOUND,
            _BOT_REPLIES,
            _CHANNEL_STATE,
            _CAMPAIGN_LINKS,
            _CLICKS,
            _OPTINS,
            _TRACK_CLICKS,
            _INDEX_3,
        ),
    ),
    Migration(
        4,
        "campaign_report, source_health, automation_activity views",
        (_CAMPAIGN_REPORT, _SOURCE_HEALTH, _AUTOMATION_ACTIVITY),
    ),
    Migration(
        5,
        "deliveries.started_at, lost_attempts; send_history shows unconfirmed tries",
        (*_LOST_ATTEMPTS, _SEND_HISTORY_5),
    ),
    Migration(6, "audiences (the tags open to self-subscription)", (_AUDIENCES,)),
    Migration(
        7,
        "composed campaigns, uploads; campaigns.kind, subscribers.locale",
        (*_COMPOSED, _SEND_HISTORY_7, _CAMPAIGN_REPORT_7),
    ),
]


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a file's schema up to date: each migration it has not had, in order, in a
    transaction of its own (all of a step or none of it), recorded as it commits."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    current = int(row[0]) if row else 0
    for version, name, statements in MIGRATIONS:
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            for sql in statements:
                con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        log.info("applied migration %03d %s", version, name)
