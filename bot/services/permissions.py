"""Who may escalate, resolve and administer: Slack user ids and user groups.

An action whose list is empty is open to everyone; members of ``admin`` may do
every action. User group membership comes from a resolver the Slack layer
injects (``usergroups.users.list``) and is cached for a few minutes, so a
permission check costs no Web API call on the hot path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum

from bot.config import PermissionsConfig
from bot.errors import NotAllowed

log = logging.getLogger(__name__)

GroupResolver = Callable[[str], set[str]]


class Permission(StrEnum):
    ESCALATE = "escalate"
    RESOLVE = "resolve"
    ADMIN = "admin"


REFUSALS = {
    Permission.ESCALATE: "Only the escalation team can escalate mentions.",
    Permission.RESOLVE: "Only the resolve team can resolve mentions.",
    Permission.ADMIN: "Only carebot admins can do that.",
}


class Permissions:
    """Checks a user against the configured lists.

    Args:
        config: the ``workflow.permissions`` section.
        ttl: seconds a user group's membership is cached.
        monotonic: the cache's clock.
    """

    def __init__(self, config: PermissionsConfig, *, ttl: float = 300.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.ttl = ttl
        self.monotonic = monotonic
        self.resolver: GroupResolver | None = None
        self._cache: dict[str, tuple[float, set[str]]] = {}
        self._lock = threading.Lock()

    def set_group_resolver(self, resolver: GroupResolver) -> None:
        self.resolver = resolver

    def allowed(self, user: str, permission: Permission) -> bool:
        """True when ``user`` may do actions that need ``permission``."""
        entries = list(getattr(self.config, permission.value))
        if not entries:
            return True
        if permission is not Permission.ADMIN:
            entries += self.config.admin
        return any(self._matches(user, entry) for entry in entries)

    def require(self, user: str, permission: Permission) -> None:
        """Raise ``NotAllowed`` with a clear message unless ``user`` may."""
        if not self.allowed(user, permission):
            raise NotAllowed(REFUSALS[permission])

    def _matches(self, user: str, entry: str) -> bool:
        if entry == user:
            return True
        if not entry.startswith("S"):
            return False
        return user in self._members(entry)

    def _members(self, group: str) -> set[str]:
        now = self.monotonic()
        with self._lock:
            cached = self._cache.get(group)
            if cached is not None and now - cached[0] < self.ttl:
                return cached[1]
        if self.resolver is None:
            log.warning("user group %s in permissions, but no group resolver is set", group)
            return set()
        try:
            members = set(self.resolver(group))
        except Exception as exc:  # noqa: BLE001 - deny, and keep a stale answer if any
            log.warning("cannot list user group %s: %s", group, type(exc).__name__)
            return cached[1] if cached is not None else set()
        with self._lock:
            self._cache[group] = (now, members)
        return members
