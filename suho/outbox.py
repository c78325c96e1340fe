"""The transactional outbox (issue 10): money and control messages reach NATS even if NATS was down at commit.

`outbox_publish_on_commit()` writes the message in the caller's transaction and, after commit, wakes a drainer in
a background thread; `outbox_drain()` publishes pending rows to JetStream in order, waiting for each ack, and marks
them published. Celery beat runs the drain every few seconds for whatever a crash or an outage left behind.
Duplicates from a retry are dropped by JetStream's de-duplication window on `Nats-Msg-Id`.

Poison messages: trouble with the connection (NATS down, a timeout, JetStream unavailable) is retried without
limit, in order. A message JetStream refuses itself (`outbox_refused`: no stream for its subject, too large, a 4xx
API error) is retried `PARK_AFTER_REFUSALS` times with a doubling wait, then parked (`parked_at`, logged at ERROR,
counted in /metrics) so the rows behind it flow; an operator re-queues it from the admin (`outbox_requeue`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import timedelta
from functools import partial
from uuid import UUID

from django.db import close_old_connections, connections, router, transaction
from django.db.models import F
from django.utils import timezone
from nats.errors import BadSubjectError, MaxPayloadError, NoRespondersError
from nats.js.errors import APIError, NoStreamResponseError

from suho.bus import get_bus
from suho.drain import drain_hook_register
from suho.models import OutboxMessage
from suho.routers import OPERATOR, SERVICE, operator_path

log = logging.getLogger(__name__)
DRAIN_BATCH = 500
KEEP_PUBLISHED = timedelta(days=1)
PARK_AFTER_REFUSALS = 5  # the waits between them: 1, 2, 4, 8 s (in practice the 5 s beat: parked after ~25 s)
REFUSALS = (NoStreamResponseError, NoRespondersError, MaxPayloadError, BadSubjectError)

_drainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="suho-outbox")
_marker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="suho-outbox-mark")
_kick_pending = threading.Event()


IMMEDIATE_TIMEOUT_S = 0.5  # the committing thread waits this long for JetStream; then the drainer takes over
MARK_LOCK_TIMEOUT_S = 15  # a background mark waits this long for the drain holding its row (a pass is ~6 s at worst)
MARKS_WAIT_S = 10.0  # how long a stopping process waits for its background marks
MARK_FAILED = "outbox: message %s published but not marked; the drain sends it again"

# Told (subject, payload) of each message right after its transaction commits, before it is published: the EA
# gateway's delivery hub hands a message for an EA connected to this process to its socket at once, so delivery waits
# on nothing slower than the commit (issue 21). The publish that follows still reaches every other process.
_committed_listeners: list[Callable[[str, bytes], None]] = []


OUTBOX_INSERT = f"""
    INSERT INTO {OutboxMessage._meta.db_table} (tenant_id, subject, payload, msg_id, created_at, attempts, last_error,
                                                refusals)
    VALUES (%s, %s, %s, %s, %s, 0, '', 0) RETURNING id
"""


def outbox_publish_on_commit(*, tenant_id: UUID, subject: str, payload: bytes, msg_id: str) -> None:
    """Record the message in the transaction that makes the change it announces, and publish it once that
    transaction commits (its outermost block, whichever alias opened it).

    The alias is the one the router gives every write of this code path: the service role under the tenant's
    context, or the operator role on the operator path (the admin runs each request in one operator transaction).
    Writing the row on the service role there would commit it, and publish, when the service's inner transaction
    ended, before the admin's commit or rollback (issue 19)."""
    alias = router.db_for_write(OutboxMessage)
    message, statement = outbox_statement(tenant_id=tenant_id, subject=subject, payload=payload, msg_id=msg_id)
    # as the ORM's create: a failed insert marks the caller's transaction for rollback, even if the caller catches it
    with transaction.mark_for_rollback_on_error(using=alias), connections[alias].cursor() as cursor:
        cursor.execute(*statement)
        rows = cursor.fetchall()
    outbox_inserted(message, rows, using=alias)


def outbox_committed_listen(listener: Callable[[str, bytes], None]) -> None:
    """Call `listener(subject, payload)` in the committing thread for each message, before its publish. It must be
    quick and must not block; what it raises is logged and the publish goes ahead."""
    if listener not in _committed_listeners:
        _committed_listeners.append(listener)


def outbox_statement(*, tenant_id: UUID, subject: str, payload: bytes, msg_id: str) -> tuple[OutboxMessage, tuple]:
    """The message and its INSERT (SQL, parameters), for a caller that sends it with its own statements in one round
    trip (`suho.sql.statements_in_context`); pass the statement's rows to `outbox_inserted`."""
    message = OutboxMessage(tenant_id=tenant_id, subject=subject, payload=payload, msg_id=msg_id,
                            created_at=timezone.now())  # fmt: skip
    return message, (OUTBOX_INSERT, [tenant_id, subject, payload, msg_id, message.created_at])


def outbox_inserted(message: OutboxMessage, rows: list[tuple], *, using: str = SERVICE) -> None:
    """The row is written (in the transaction open on `using`): publish the message once that transaction commits."""
    (message.id,) = rows[0]
    message._state.adding, message._state.db = False, using
    transaction.on_commit(partial(_publish_committed, message), using=using)


# The committing thread's mark: skips a row a drain holds, and one a drain has marked already.
MARK_UNLESS_LOCKED = f"""
    UPDATE {OutboxMessage._meta.db_table} SET published_at = %s, attempts = attempts + 1, retry_at = NULL
     WHERE id = (SELECT id FROM {OutboxMessage._meta.db_table}
                  WHERE id = %s AND published_at IS NULL FOR UPDATE SKIP LOCKED)
"""


def _publish_committed(message: OutboxMessage) -> None:
    """Right after commit, in the committing thread: publish, then mark the row published; a failed publish is left
    to the drainer.

    The mark never waits for a drain: a drain holds the rows of its pass until the pass ends (each publish waits up
    to `PUBLISH_TIMEOUT_S` for its ack), and an EA's EVENT_ACK and a signal POST's answer wait for this thread. A row
    a drain holds is marked in the background once the drain lets go of it (`_mark_when_free`), so a drain that
    stopped before reaching it does not send it again later, after the stream's duplicate window."""
    for listener in _committed_listeners:
        try:
            listener(message.subject, bytes(message.payload))
        except Exception:  # the publish below still delivers it
            log.exception("outbox: a committed-message listener failed", extra={"tenant_id": message.tenant_id})
    try:
        get_bus().jetstream_publish(message.subject, message.payload, msg_id=message.msg_id,
                                    timeout=IMMEDIATE_TIMEOUT_S)  # fmt: skip
    except Exception:  # noqa: BLE001 — NATS slow or down: the background drainer retries from the table
        outbox_kick()
        return
    published_at = timezone.now()
    connection = connections[OPERATOR]
    try:  # in a savepoint when this thread's operator connection is inside a transaction: a failure spares it
        with transaction.atomic(using=OPERATOR) if connection.in_atomic_block else nullcontext():
            with connection.cursor() as cursor:
                cursor.execute(MARK_UNLESS_LOCKED, [published_at, message.id])
                marked = cursor.rowcount == 1
        if not marked:
            _marker.submit(_mark_when_free, message.id, published_at)
    except Exception:  # published, so never the caller's error: the drain sends it again
        log.warning(MARK_FAILED, message.id, exc_info=True, extra={"tenant_id": message.tenant_id, "task": "outbox"})
        outbox_kick()


def _mark_when_free(message_id: int, published_at) -> None:
    """Wait for the drain holding the row (at most `MARK_LOCK_TIMEOUT_S`), then mark it published, unless that
    drain published and marked it. Only rows that a running drain holds queue here, and they follow the first."""
    close_old_connections()
    try:
        with operator_path(), transaction.atomic(using=OPERATOR):
            with connections[OPERATOR].cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{MARK_LOCK_TIMEOUT_S}s'")
            OutboxMessage.objects.filter(id=message_id, published_at__isnull=True).update(
                published_at=published_at, attempts=F("attempts") + 1, retry_at=None
            )
    except Exception:  # a drain that hangs, or the database: the row is sent again, nothing lost
        log.warning(MARK_FAILED, message_id, exc_info=True, extra={"task": "outbox"})
    finally:
        close_old_connections()


def outbox_marks_wait(timeout_s: float = MARKS_WAIT_S) -> None:
    """Let the background marks queued now finish before the process exits (bounded): a mark lost at exit means
    the row is sent again, stored twice if that happens after the stream's duplicate window."""
    try:
        _marker.submit(lambda: None).result(timeout=timeout_s)
    except Exception:  # noqa: BLE001 — timed out, or already shut down: the drain sends those rows again
        log.warning("outbox: background marks not finished at exit; the drain sends those rows again")


async def _marks_wait_at_drain() -> None:
    await asyncio.to_thread(outbox_marks_wait)


drain_hook_register(_marks_wait_at_drain)


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


def outbox_refused(exc: BaseException) -> bool:
    """True when JetStream (or the client) refused this message itself, so a retry would most likely fail the same
    way: no stream covers the subject, the payload is over the limit, a 4xx API error. False for trouble every
    message would meet alike — connection lost, timeout, NATS down, JetStream unavailable or out of resources (5xx)
    — and for anything unknown: those keep the queue in order and are retried without limit."""
    if isinstance(exc, APIError):
        return exc.code is not None and 400 <= exc.code < 500
    return isinstance(exc, REFUSALS)


def outbox_drain(*, limit: int = DRAIN_BATCH, now=None) -> int:
    """Publish pending messages in order, each acked by JetStream before the next. Returns how many were published.

    Connection trouble stops the pass (the rest would fail too) and leaves the row first in line. A refusal
    (`outbox_refused`) sets a backoff on the row, and the pass stops behind it as well: a refusal that passes (a
    stream leader election) then reorders nothing, and the wait costs only rows whose own after-commit publish
    failed. At the `PARK_AFTER_REFUSALS`-th refusal the row is parked and the pass goes on past it. `now` is the
    clock the backoff is measured on (tests pass a later one instead of sleeping).

    Locks the rows it publishes (`select_for_update(skip_locked=True)`), so drainers in several processes share
    the work without sending a row twice at once.
    """
    bus = get_bus()
    now = now or timezone.now()
    published = 0
    with operator_path(), transaction.atomic(using=OPERATOR):
        pending = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True, parked_at__isnull=True)
            .order_by("id")[:limit]
        )
        for message in pending:
            if message.retry_at is not None and message.retry_at > now:
                break  # waiting after a refusal; the rows behind it wait too
            try:
                bus.jetstream_publish(message.subject, bytes(message.payload), msg_id=message.msg_id)
            except Exception as exc:  # noqa: BLE001 — recorded on the row, retried by the next drain
                if _failure_record(message, exc, now=now):
                    continue  # parked: the rows behind it flow
                break
            OutboxMessage.objects.filter(id=message.id).update(
                published_at=timezone.now(), attempts=message.attempts + 1, retry_at=None
            )
            published += 1
    return published


def _failure_record(message: OutboxMessage, exc: Exception, *, now) -> bool:
    """Record a failed publish on the row (inside the drain's transaction). True when the row is now parked."""
    fields = {"attempts": message.attempts + 1, "last_error": f"{type(exc).__name__}: {exc}"[:300]}
    if not outbox_refused(exc):
        OutboxMessage.objects.filter(id=message.id).update(**fields)
        return False
    refusals = message.refusals + 1
    if refusals < PARK_AFTER_REFUSALS:
        retry_at = now + timedelta(seconds=2 ** (refusals - 1))
        OutboxMessage.objects.filter(id=message.id).update(**fields, refusals=refusals, retry_at=retry_at)
        return False
    OutboxMessage.objects.filter(id=message.id).update(
        **fields, refusals=refusals, retry_at=None, parked_at=timezone.now()
    )
    log.error(
        "outbox: message %s (%s, Nats-Msg-Id %s) parked after %d refusals: %s; re-queue it from the admin once fixed",
        message.id, message.subject, message.msg_id, refusals, fields["last_error"],
        extra={"tenant_id": message.tenant_id, "task": "outbox"},
    )  # fmt: skip
    return True


def outbox_backlog() -> dict[str, int]:
    """How many messages wait to be published (`pending`) and how many JetStream refused for good (`parked`): the
    operator dashboard's figures. Every tenant's only inside `operator_path()`."""
    waiting = OutboxMessage.objects.filter(published_at__isnull=True)
    return {
        "pending": waiting.filter(parked_at__isnull=True).count(),
        "parked": waiting.filter(parked_at__isnull=False).count(),
    }


def outbox_requeue(*, message_ids) -> int:
    """Put parked messages back in line (an operator fixed the cause: added the stream, raised the limit). They
    keep their place by id and get `PARK_AFTER_REFUSALS` fresh tries; the drain is kicked after commit. Published
    or pending rows are left alone. Returns how many were re-queued."""
    with operator_path():
        requeued = OutboxMessage.objects.filter(
            id__in=list(message_ids), parked_at__isnull=False, published_at__isnull=True
        ).update(parked_at=None, refusals=0, retry_at=None)
    if requeued:
        transaction.on_commit(outbox_kick, using=OPERATOR)
    return requeued


def outbox_prune(*, now=None) -> int:
    """Delete messages published more than a day ago (JetStream keeps the stream; this table is only a buffer)."""
    now = now or timezone.now()
    with operator_path():
        deleted, _ = OutboxMessage.objects.filter(published_at__lt=now - KEEP_PUBLISHED).delete()
    return deleted
