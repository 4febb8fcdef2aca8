"""carebot's exception tree.

    CarebotError
    ├── ConfigError          a setting or the YAML config is missing or malformed
    ├── NotFound             the mention (or other record) does not exist
    ├── AlreadyClaimed       someone else holds the mention
    ├── NotAllowed           the user lacks the role for an action
    ├── InvalidInput         a request body or file that cannot be used
    └── SourceUnavailable    a listening source failed (network, 4xx/5xx, bad body)
        └── Gone             what was asked for is not there (HTTP 404/410, a post
                             deleted, archived or locked): retrying will not help

Handlers turn a ``CarebotError`` into a clear ephemeral message; anything else is
logged with an error id the user sees.
"""

from __future__ import annotations


class CarebotError(Exception):
    """Base class: ``str(err)`` is safe to show to a user."""


class ConfigError(CarebotError):
    pass


class NotFound(CarebotError):
    pass


class AlreadyClaimed(CarebotError):
    def __init__(self, mention_id: int, claimed_by: str) -> None:
        super().__init__(f"Already claimed by <@{claimed_by}>.")
        self.mention_id = mention_id
        self.claimed_by = claimed_by


class NotAllowed(CarebotError):
    pass


class InvalidInput(CarebotError):
    pass


class SourceUnavailable(CarebotError):
    pass


class Gone(SourceUnavailable):
    pass
