"""Listening sources: connectors that find mentions where customers talk.

``base`` holds the ``Source`` protocol and the HTTP plumbing, one module per
connector maps an API's documented response format to ``MentionIn``,
``poller`` runs them with durable cursors, backoff, noise filtering and
cross-source deduplication, and ``replies`` posts answers back. Nothing here
imports Slack or SQL libraries.
"""
