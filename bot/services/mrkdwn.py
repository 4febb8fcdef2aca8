"""Text for Slack's mrkdwn, written by the core for messages it queues itself.

Slack reads ``<!channel>``, ``<@U…>``, ``<#C…>``, ``<!subteam^S…>`` and ``<url|label>``
in a message's text; customer and staff text must not (it would ping, or spoof a
link), so it goes through :func:`escape` before it is put into one.
"""

from __future__ import annotations


def escape(text: str) -> str:
    """Escape Slack's control characters (``& < >``) so the text cannot ping or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
