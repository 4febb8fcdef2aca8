"""Delivers the durable dispatch queue: CRM case webhooks and replies through sources.

A CRM webhook is a ``POST`` of the JSON case payload, signed with HMAC-SHA256
so the receiver can verify it came from carebot::

    X-Carebot-Timestamp: <unix seconds>
    X-Carebot-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    Idempotency-Key:     carebot-escalation-<escalation id>

Delivery is at least once: the same ``Idempotency-Key`` on every attempt lets
the receiver drop a duplicate. A ``2xx`` answer is success; its JSON
``case_id`` (or ``id``) goes onto the card. Anything else is retried with
capped exponential backoff (``Retry-After`` honoured); a request that keeps
failing is parked — kept, shown on the card, and replayed with
``carebot dispatch requeue``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx

from bot.errors import CarebotError, InvalidInput, NotAllowed
from storage import escalations as esc_store
from storage import workflow as store
from storage.db import session_scope

if TYPE_CHECKING:
    from bot.services.workflow import Workflow

log = logging.getLogger(__name__)

#: Transient failures are retried this often before the request is parked.
MAX_ATTEMPTS = 15
#: A receiver that says the request itself is wrong (4xx) gets fewer tries.
MAX_PERMANENT_ATTEMPTS = 4
BASE_DELAY = 5.0
MAX_DELAY = 3600.0
RETRYABLE_4XX = {408, 409, 425, 429}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def backoff(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 5, 10, 20 ... 1 h."""
    return min(BASE_DELAY * 2.0 ** max(0, attempts - 1), MAX_DELAY)


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    error: str = ""
    permanent: bool = False
    retry_after: float | None = None
    result: str | None = None  # case id or reply id


class Dispatcher:
    """Leases due dispatch rows and sends them; ``run_once`` returns how many it handled.

    Args:
        workflow: the workflow service (records outcomes on the cards).
        owner: this replica's lease owner id.
        http: the HTTP client (tests may pass one with a mock transport).
    """

    def __init__(self, workflow: Workflow, *, owner: str, http: httpx.Client | None = None,
                 lease: timedelta = timedelta(seconds=120), batch: int = 10) -> None:
        self.workflow = workflow
        self.owner = owner
        self.http = http or httpx.Client(follow_redirects=False)
        self.lease = lease
        self.batch = batch

    def run_once(self) -> int:
        now = self.workflow.now()
        with session_scope(self.workflow.services.engine) as session:
            rows = esc_store.lease_due(session=session, owner=self.owner, now=now,
                                       lease=self.lease, limit=self.batch)
            tasks = [(r.id or 0, r.kind, r.ref_id, r.attempts, dict(r.payload)) for r in rows]
        for item_id, kind, ref_id, attempts, payload in tasks:
            if not self._still_mine(item_id):
                # Its lease ran out behind slow requests earlier in this batch and another
                # replica took it over: sending it too would reply to a customer twice.
                log.info("dispatch %s was taken over by another worker; not sending", item_id)
                continue
            if kind == esc_store.CRM_CASE:
                outcome = self.send_case(ref_id or 0, payload)
            elif kind == esc_store.SOURCE_REPLY:
                outcome = self.send_reply(ref_id or 0)
            else:
                outcome = Outcome(ok=False, error=f"unknown kind {kind}", permanent=True)
            self.record(item_id, kind, ref_id or 0, attempts, outcome)
        return len(tasks)

    def _still_mine(self, item_id: int) -> bool:
        """Renew this worker's lease on ``item_id`` before sending it; False if it lost it."""
        with session_scope(self.workflow.services.engine) as session:
            return esc_store.renew_lease(session=session, item_id=item_id, owner=self.owner,
                                         now=self.workflow.now(), lease=self.lease)

    # -- senders ---------------------------------------------------------------

    def send_case(self, escalation_id: int, payload: dict[str, Any]) -> Outcome:
        config = self.workflow.services.config.workflow.escalation
        url = config.crm_webhook_url
        if url is None:
            return Outcome(ok=False, error="no crm_webhook_url configured")
        secret = os.environ.get(config.crm_secret_env)
        if not secret:
            # Kept and retried: it goes out once the secret is set.
            return Outcome(ok=False, error=f"{config.crm_secret_env} is not set")
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True,
                          separators=(",", ":")).encode()
        timestamp = str(int(self.workflow.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "carebot-webhook/1",
            "X-Carebot-Timestamp": timestamp,
            "X-Carebot-Signature": sign(secret, timestamp, body),
            "Idempotency-Key": f"carebot-escalation-{escalation_id}",
        }
        try:
            response = self.http.post(url, content=body, headers=headers,
                                      timeout=config.crm_timeout_seconds)
        except httpx.HTTPError as exc:
            return Outcome(ok=False, error=f"{type(exc).__name__}")
        if 200 <= response.status_code < 300:
            return Outcome(ok=True, result=case_id_of(response))
        retry_after = None
        if response.status_code in (429, 503):
            try:
                retry_after = float(response.headers.get("Retry-After", ""))
            except ValueError:
                retry_after = None
            # "nan", "-5" or 1e12 seconds are no delay to schedule (nan made recording
            # the failure raise, and the row was re-sent at every lease expiry).
            if retry_after is not None and not 0 <= retry_after < math.inf:
                retry_after = None
            elif retry_after is not None:
                retry_after = min(retry_after, MAX_DELAY)
        permanent = 400 <= response.status_code < 500 and \
            response.status_code not in RETRYABLE_4XX
        return Outcome(ok=False, error=f"HTTP {response.status_code}", permanent=permanent,
                       retry_after=retry_after)

    def send_reply(self, reply_id: int) -> Outcome:
        wf = self.workflow
        with session_scope(wf.services.engine) as session:
            reply = store.get_reply(session=session, reply_id=reply_id)
            if reply is None:
                return Outcome(ok=False, error="reply is gone", permanent=True)
            target = wf.reply_target(session, reply.mention_id)
            text = reply.text
        try:
            external_id = wf.replier.send(target, text)
        except (NotAllowed, InvalidInput) as exc:  # retrying will not help
            return Outcome(ok=False, error=str(exc)[:200], permanent=True)
        except CarebotError as exc:
            return Outcome(ok=False, error=str(exc)[:200])
        return Outcome(ok=True, result=external_id)

    # -- outcome -----------------------------------------------------------------

    def record(self, item_id: int, kind: str, ref_id: int, attempts: int,
               outcome: Outcome) -> None:
        wf = self.workflow
        now = wf.now()
        with session_scope(wf.services.engine) as session:
            if outcome.ok:
                if not esc_store.mark_sent(session=session, item_id=item_id, owner=self.owner,
                                           now=now):
                    return  # lease lost; the other owner records it
                if kind == esc_store.CRM_CASE:
                    wf.escalations.case_created(session, escalation_id=ref_id,
                                                case_id=outcome.result, now=now)
                else:
                    wf.reply_sent(session, reply_id=ref_id, external_id=outcome.result,
                                  now=now)
                log.info("dispatch %s %s sent after %d attempt(s)", kind, item_id, attempts)
                notify = True
            elif attempts >= (MAX_PERMANENT_ATTEMPTS if outcome.permanent else MAX_ATTEMPTS):
                if not esc_store.mark_parked(session=session, item_id=item_id,
                                             owner=self.owner, error=outcome.error):
                    return
                if kind == esc_store.CRM_CASE:
                    wf.escalations.case_failed(session, escalation_id=ref_id,
                                               error=outcome.error, now=now)
                elif kind == esc_store.SOURCE_REPLY:
                    wf.reply_failed(session, reply_id=ref_id, error=outcome.error, now=now)
                log.warning("dispatch %s %s parked after %d attempts: %s", kind, item_id,
                            attempts, outcome.error)
                notify = True
            else:
                delay = outcome.retry_after if outcome.retry_after is not None \
                    else backoff(attempts)
                esc_store.mark_retry(session=session, item_id=item_id, owner=self.owner,
                                     retry_at=now + timedelta(seconds=delay),
                                     error=outcome.error)
                log.warning("dispatch %s %s attempt %d failed (%s); retry in %.0fs", kind,
                            item_id, attempts, outcome.error, delay)
                notify = False
        if notify:
            wf.notify("outbox")


def case_id_of(response: httpx.Response) -> str | None:
    """The case id in a CRM's JSON answer (``case_id`` or ``id``), if any."""
    try:
        data = response.json()
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for key in ("case_id", "id"):  # the first that is an id: text, or a whole number
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:255]
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None
