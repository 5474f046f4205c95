"""The DuckDB store: the only package that speaks SQL.

:class:`Store` is the one object callers use: one DuckDB file (:class:`Database`, the
connection helper: busy-file retries, sessions, transactions, guarded connections for
user SQL) with the methods of its focused repositories, each a class over that helper in
a module of its own:

- :mod:`~feedcast.store.sources`: sources and their items; :mod:`~feedcast.store.polls`:
  what a poll did to them;
- :mod:`~feedcast.store.channels`: channels, their state and bot replies;
  :mod:`~feedcast.store.subscribers`: subscribers, subscriptions, public audiences,
  double opt-in;
- :mod:`~feedcast.store.automations`: automations, their one-off sends and queues;
  :mod:`~feedcast.store.campaigns`: campaigns, deliveries, tracked links and clicks;
  :mod:`~feedcast.store.composed`: composed campaigns and their uploaded files;
- :mod:`~feedcast.store.inbound`: what people send the bots;
- :mod:`~feedcast.store.reports`: the report views' queries and the history export.

A repository that needs another derives from it (subscribers and inbound from channels,
automations from channels and sources); campaigns record what a delivery means for its
subscriber with the subscribers' own steps (:func:`~feedcast.store.subscribers.set_statuses`).
Schema changes are numbered migrations in one ordered list
(:data:`MIGRATIONS`, :mod:`feedcast.store.migrations`), recorded in ``schema_migrations``.
"""

from __future__ import annotations

from feedcast.store.automations import AutomationRepository, validate_where
from feedcast.store.campaigns import CampaignRepository
from feedcast.store.composed import ComposedPart, ComposedRepository
from feedcast.store.database import Connection, Database, default_db_path
from feedcast.store.inbound import PENDING, InboundRepository
from feedcast.store.migrations import MIGRATIONS
from feedcast.store.polls import PollRepository, PollSummary
from feedcast.store.reports import ReportData, ReportRepository
from feedcast.store.sources import ItemEvent, NewSource, SourceRepository
from feedcast.store.subscribers import AUDIENCE_TAG, SubscriberRepository

__all__ = [
    "AUDIENCE_TAG",
    "MIGRATIONS",
    "PENDING",
    "ComposedPart",
    "Connection",
    "Database",
    "ItemEvent",
    "NewSource",
    "PollSummary",
    "ReportData",
    "Store",
    "default_db_path",
    "validate_where",
]


class Store(
    ComposedRepository,
    SubscriberRepository,
    InboundRepository,
    AutomationRepository,
    SourceRepository,
    PollRepository,
    CampaignRepository,
    ReportRepository,
):
    """One DuckDB file. Cheap to create; holds no connection between calls."""
