"""The transactional outbox (issue 10): money and control messages reach NATS even if NATS was down at commit.

`outbox_publish_on_commit()` writes the message in the caller's transaction and, after commit, wakes a drainer in
a background thread; `outbox_drain()` publishes pending rows to JetStream in order, waiting for each ack, and marks
them published. Celery beat runs the drain every few seconds for whatever a crash or an outage left behind.
Duplicates from a retry are dropped by JetStream's de-duplication window on `Nats-Msg-Id`.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from uuid import UUID

from django.db import close_old_connections, transaction
from django.utils import timezone

from suho.bus import get_bus
from suho.models import OutboxMessage
from suho.routers import OPERATOR, SERVICE, operator_path

log = logging.getLogger(__name__)
DRAIN_BATCH = 500
KEEP_PUBLISHED = timedelta(days=1)

_drainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="suho-outbox")
_kick_pending = threading.Event()


IMMEDIATE_TIMEOUT_S = 0.5  # the committing thread waits this long for JetStream; then the drainer takes over


def outbox_publish_on_commit(*, tenant_id: UUID, subject: str, payload: bytes, msg_id: str) -> None:
    """Record the message in the current transaction (on the service role, under the tenant's context) and
    publish it once that transaction commits."""
    message = OutboxMessage.objects.using(SERVICE).create(
        tenant_id=tenant_id, subject=subject, payload=payload, msg_id=msg_id
    )
    transaction.on_commit(partial(_publish_committed, message), using=SERVICE)


def _publish_committed(message: OutboxMessage) -> None:
    """Right after commit, in the committing thread: publish and mark it; any failure leaves it to the drainer."""
    try:
        get_bus().jetstream_publish(message.subject, message.payload, msg_id=message.msg_id,
                                    timeout=IMMEDIATE_TIMEOUT_S)  # fmt: skip
        with operator_path():
            OutboxMessage.objects.filter(id=message.id).update(published_at=timezone.now(), attempts=1)
    except Exception:  # noqa: BLE001 — NATS slow or down: the background drainer retries from the table
        outbox_kick()


def outbox_kick() -> None:
    """Ask the process's drainer to run soon; many kicks while it runs collapse into one more pass."""
    if not _kick_pending.is_set():
        _kick_pending.set()
        _drainer.submit(_drain_in_background)


def _drain_in_background() -> None:
    _kick_pending.clear()
    close_old_connections()
    try:
        outbox_drain()
    except Exception:
        log.exception("outbox drain failed")
    finally:
        close_old_connections()


def outbox_drain(*, limit: int = DRAIN_BATCH) -> int:
    """Publish pending messages in order; stop at the first failure (NATS is down: the rest would fail too).

    Locks the rows it publishes (`select_for_update(skip_locked=True)`), so drainers in several processes share
    the work without sending a row twice at once.
    """
    bus = get_bus()
    published = 0
    with operator_path(), transaction.atomic(using=OPERATOR):
        pending = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True)
            .order_by("id")[:limit]
        )
        for message in pending:
            try:
                bus.jetstream_publish(message.subject, bytes(message.payload), msg_id=message.msg_id)
            except Exception as exc:  # noqa: BLE001 — recorded on the row, retried by the next drain
                OutboxMessage.objects.filter(id=message.id).update(
                    attempts=message.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:300]
                )
                break
            OutboxMessage.objects.filter(id=message.id).update(
                published_at=timezone.now(), attempts=message.attempts + 1
            )
            published += 1
    return published


def outbox_prune(*, now=None) -> int:
    """Delete messages published more than a day ago (JetStream keeps the stream; this table is only a buffer)."""
    now = now or timezone.now()
    with operator_path():
        deleted, _ = OutboxMessage.objects.filter(published_at__lt=now - KEEP_PUBLISHED).delete()
    return deleted
