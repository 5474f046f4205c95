"""Inbound bot traffic: people subscribing, leaving and writing to a bot or a page.
:mod:`feedcast.inbox.telegram` (getUpdates long polling or the webhook) and
:mod:`feedcast.inbox.messenger` (the webhook) record every event (:meth:`Store.record_inbound`),
change subscriptions (:meth:`Store.subscribe` / :meth:`Store.unsubscribe`) and answer
with the channel's replies (:mod:`feedcast.replies`)."""
