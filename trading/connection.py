"""An EA connection's life: the claim of the account's one live session, connect (resync from the database),
disconnect; online status. The outbound bookkeeping (SENT marks, ACKs) is batched in `trading.outbound_batch`.

One live session per account, across processes (decision 0017): `ea_session_claim` bumps the account row's
`live_session_epoch` under its row lock; a session's frames count only while its epoch is the row's
(`ea_session_is_live`, taken FOR SHARE first in the transaction that applies them, so a claim waits for them and
they never follow it). Lock order: the account row before any other lock (the audit chain's, a ticket's).
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID, uuid4

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connections, models, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from accounts import services as account_services
from accounts.models import EASession, MT5Account
from accounts.selectors import OFFLINE_AFTER
from binproto import RATE_LIMIT_RETRY_AFTER_S
from signals.delivery import signals_for_resync
from signals.messages import (
    ACCOUNT_MESSAGE_FIELDS,
    command_message,
    config_update_message,
    risk_parameters_message,
    signal_message,
)
from suho.audit import audit_record
from suho.cache import cache_client, redis_unavailable
from suho.routers import OPERATOR, SERVICE
from suho.sql import (
    CompiledRead,
    compiled_read,
    reads_statement,
    results_of_bound,
    tenant_reads,
    tenant_round_trip,
    tenant_statement,
)
from trading.outbound import commands_for_resync

SESSION_NOT_ACTIVE = "session is not active for this account"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionClaim:
    epoch: int  # the new session's: its frames count while the account row still holds it
    previous_session_id: UUID | None
    previous_node: str  # the process that held the previous session ("" if none): it is asked to close it


# One statement, so one round trip; the function (trading migration 0008) locks the account row first, then bumps
# the epoch and marks the account online, ends the previous session and audits both, in that order. No row: the
# session may not go on (ended, its key revoked, its account or tenant disabled), and nothing changed. A function,
# so PostgreSQL plans it once per connection, not on every HELLO (decision 0030).
CLAIM_SQL = """
SELECT epoch, previous_session_id, previous_node
  FROM suho_ea_session_claim(%(account_id)s, %(session_id)s, %(node)s, %(now)s, %(replaced)s, %(connected)s,
                             %(connected_metadata)s)
"""


def ea_session_claim(
    *, tenant_id: UUID, account_id: UUID, session_id: UUID, node: str, ea_version: str = ""
) -> SessionClaim | None:
    """Make `session_id` (served by process `node`) the account's one live session, if it may go on (not ended,
    its key not revoked, its account and tenant enabled; None if not, and nothing changes): bump the epoch, record
    the session and node, mark the account online, end the previous session in the database (so its tokens no
    longer refresh and the session watch closes it even if the takeover request is lost), audit that and the
    connect. One transaction in one round trip (`tenant_round_trip`); the account row is locked first."""
    params = _claim_params(account_id=account_id, session_id=session_id, node=node, ea_version=ea_version)
    return _claim_of(tenant_round_trip(tenant_id, CLAIM_SQL, params)[0])


def _claim_of(rows: list[tuple]) -> SessionClaim | None:
    """The claim function's row: none when the session may not go on."""
    return SessionClaim(*rows[0]) if rows else None


def _claim_params(*, account_id, session_id, node: str, ea_version: str) -> dict:
    return {
        "account_id": account_id, "session_id": str(session_id), "node": node[:100], "now": timezone.now(),
        "replaced": EASession.END_REPLACED,
        "connected": f"EA connected (session {session_id}, EA {ea_version or 'unknown'})",
        "connected_metadata": json.dumps({"session_id": str(session_id), "ea_version": ea_version}),
    }  # fmt: skip


@dataclass(frozen=True)
class TokenHello:
    """What a token HELLO's checks came to: held after a 4008 (`held_s`), refused (`refusal`), or claimed (`claims`
    with `claim`, which is None when the session may not go on)."""

    held_s: int = 0
    refusal: account_services.EAAuthError | None = None
    claims: account_services.EAClaims | None = None
    claim: SessionClaim | None = None


def ea_token_hello(*, account_id, token: str, node: str, ea_version: str = "") -> TokenHello:
    """A HELLO with an access token, in the order the gateway answers it: the hold after a 4008 (before anything
    else, as for an API key), the token's signature, expiry and account, then the claim (`ea_session_claim`). One
    call, so one trip to a database thread instead of one per step. The gateway asks `ea_token_hellos` for the
    HELLOs that wait together; this is one of them alone."""
    (hello,) = ea_token_hellos([HelloAsked(account_id=str(account_id), token=token, ea_version=ea_version)], node=node)
    if isinstance(hello, Exception):
        raise hello
    return hello


# Claims and disconnects per round trip (`_each_its_own_transaction`): each commits in turn inside the round trip,
# so this bounds how long it takes.
TRANSACTIONS_PER_ROUND_TRIP = 32


@dataclass(frozen=True)
class HelloAsked:
    """A token HELLO as the EA sent it, for `ea_token_hellos`."""

    account_id: str
    token: str
    ea_version: str = ""


def ea_token_hellos(hellos: list[HelloAsked], *, node: str) -> list[TokenHello | Exception]:
    """`ea_token_hello` for the HELLOs that wait for a database thread together (issue 21: in a reconnect storm each
    paid a thread hop, a pooled connection and a round trip of its own): the 4008 holds in one Redis round trip,
    each token checked, then the claims in one database round trip per TRANSACTIONS_PER_ROUND_TRIP. Each claim is still
    a transaction of its own (BEGIN … COMMIT in the one query string), so it holds its account row and its tenant's
    audit chain no longer than alone, and one EA's failure is not another's. Per HELLO, its TokenHello, or the
    exception its claim raised."""
    held = _holds_left_s([hello.account_id for hello in hellos])
    outcomes: list[TokenHello | Exception] = []
    claiming: list[tuple[int, account_services.EAClaims, str]] = []  # (position, claims, ea_version)
    for position, (hello, held_s) in enumerate(zip(hellos, held, strict=True)):
        if held_s:
            outcomes.append(TokenHello(held_s=held_s))
            continue
        try:
            claims = account_services.ea_access_verify(token=hello.token)
            if str(claims.account_id) != str(hello.account_id):
                raise account_services.EAAuthError("invalid_token", SESSION_NOT_ACTIVE)
        except account_services.EAAuthError as exc:
            outcomes.append(TokenHello(refusal=exc))
            continue
        outcomes.append(TokenHello(claims=claims))
        claiming.append((position, claims, hello.ea_version))
    for (position, claims, _version), claim in zip(claiming, _claims_made(claiming, node=node), strict=True):
        outcomes[position] = claim if isinstance(claim, Exception) else TokenHello(claims=claims, claim=claim)
    return outcomes


def _holds_left_s(account_ids: list[str]) -> list[int]:
    """`ea_rate_limit_hold_left_s` of each account, in one Redis round trip."""
    try:
        pipeline = cache_client().pipeline(transaction=False)
        for account_id in account_ids:
            pipeline.ttl(rate_limit_hold_key(account_id))
        return [max(0, left_s) for left_s in pipeline.execute()]
    except RedisError as exc:
        redis_unavailable(exc)
        return [0] * len(account_ids)


def _claims_made(claiming: list, *, node: str) -> list[SessionClaim | Exception | None]:
    """The claims of `claiming` ((position, claims, ea_version) each), each its own transaction
    (`_each_its_own_transaction`)."""
    transactions = []
    for _position, claims, ea_version in claiming:
        params = _claim_params(
            account_id=claims.account_id, session_id=claims.session_id, node=node, ea_version=ea_version
        )
        transactions.append((claims.tenant_id, CLAIM_SQL, params))
    return _each_its_own_transaction(transactions, _claim_of)


def _each_its_own_transaction(transactions: list[tuple[UUID, str, dict]], outcome_of) -> list:
    """`outcome_of` the rows of each (tenant_id, sql, params), each run as a transaction of its own under its
    tenant's context, one after another, TRANSACTIONS_PER_ROUND_TRIP to a round trip (BEGIN … COMMIT each, in one
    query string): so none holds its rows or its tenant's audit-chain lock longer than alone, and one's failure is not
    another's. Each outcome, or the exception its statement raised alone."""
    outcomes: list = []
    for start in range(0, len(transactions), TRANSACTIONS_PER_ROUND_TRIP):
        outcomes += _in_one_round_trip(transactions[start : start + TRANSACTIONS_PER_ROUND_TRIP], outcome_of)
    return outcomes


def _in_one_round_trip(transactions: list[tuple[UUID, str, dict]], outcome_of) -> list:
    """A statement that fails (a lock timeout, a statement timeout, the database going away) stops the rest of the
    query string: the open transaction is rolled back and each transaction of the round trip runs again alone, so
    each outcome is its own. Those that had committed before the failure then run twice (audited twice: a claim
    takes the next epoch; the account's state is right either way). One alone, or inside a caller's transaction (a
    test's, which cannot hold transactions of their own), runs as `tenant_round_trip`."""
    connection = connections[SERVICE]
    if len(transactions) > 1 and not connection.in_atomic_block:
        try:
            statements = []
            for tenant_id, sql, params in transactions:
                statements += [("BEGIN", None), tenant_statement(tenant_id, sql, params), ("COMMIT", None)]
            with connection.cursor() as cursor:
                results = results_of_bound(cursor, statements)
            return [outcome_of(rows) for rows in results[2::4]]  # BEGIN, the tenant setting, the statement, COMMIT
        except DatabaseError:
            log.warning("%d transactions in one round trip failed; each runs again alone", len(transactions),
                        exc_info=True)  # fmt: skip
            _transaction_abandon(connection)
    return [_alone(tenant_id, sql, params, outcome_of) for tenant_id, sql, params in transactions]


def _transaction_abandon(connection) -> None:
    """Roll back the failed transaction, left open by the error; a lost connection is Django's to drop."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except DatabaseError:
        connection.close_if_unusable_or_obsolete()


def _alone(tenant_id, sql: str, params: dict, outcome_of):
    try:
        return outcome_of(tenant_round_trip(tenant_id, sql, params)[0])
    except Exception as exc:  # noqa: BLE001 — this EA's alone, as its own call would have raised it
        return exc


def ea_session_is_live(*, account_id: UUID, epoch: int) -> bool:
    """Inside the caller's transaction (tenant context set): does the session of `epoch` still hold the account?
    Takes the account row FOR SHARE, so it must come before the transaction's other locks; a concurrent claim
    waits until the caller commits."""
    with connections[SERVICE].cursor() as cursor:
        cursor.execute(
            "SELECT live_session_epoch = %s FROM mt5_user_accounts WHERE account_id = %s FOR SHARE",
            [epoch, account_id],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


@dataclass
class Resync:
    messages: list = field(default_factory=list)
    v1_symbol_overrides: dict[int, str] = field(default_factory=dict)


def ea_resync(*, tenant_id: UUID, account_id: UUID) -> Resync:
    """What the EA must have after HELLO (and after NATS reconnects: live messages may have been missed): risk
    parameters, configuration, still-valid signals, pending commands — the database is the source of truth; the EA
    de-duplicates by id. Three set-based reads in one round trip. The account was marked online and the connect
    audited by `ea_session_claim`."""
    accounts, signals, commands = tenant_reads(
        tenant_id, _resync_reads(), {RESYNC_ACCOUNT: UUID(str(account_id)), RESYNC_NOW: timezone.now()}
    )
    return _resync_of(account_id, accounts, signals, commands)


def _resync_of(account_id, accounts: list, signals: list, commands: list) -> Resync:
    if not accounts:
        raise MT5Account.DoesNotExist(account_id)
    account = accounts[0]
    messages = [risk_parameters_message(account), config_update_message(account)]
    messages += [signal_message(signal) for signal in signals]
    messages += [command_message(command) for command in commands]
    overrides = {int(k): str(v) for k, v in account.symbol_id_overrides.items() if str(k).isdigit()}
    return Resync(messages, overrides)


RESYNCS_PER_ROUND_TRIP = 64  # bounds the query string (~3 KiB an EA) and the read's transaction


def ea_resyncs(accounts: list[tuple[UUID, UUID]]) -> list[Resync | Exception]:
    """`ea_resync` for several EAs, of any tenants, in one round trip per RESYNCS_PER_ROUND_TRIP (issue 21: the EAs
    of a reconnect storm, or of a NATS reconnect, each asked for their own): `accounts` are (tenant_id, account_id)
    pairs, the tenant the EA's verified token names. Each EA's three reads run under its own tenant's context, set
    just before them in the same read-only transaction, so row-level security gives each only its tenant's rows.
    Per pair, its Resync, or the exception `ea_resync` would raise for it alone (an account its tenant cannot see:
    MT5Account.DoesNotExist); a failure of the round trip itself (the database) raises."""
    if connections[SERVICE].in_atomic_block:  # a test's transaction: the tenant setting would outlive each read
        return [_resync_or_error(tenant_id, account_id) for tenant_id, account_id in accounts]
    resyncs: list[Resync | Exception] = []
    for start in range(0, len(accounts), RESYNCS_PER_ROUND_TRIP):
        resyncs += _resyncs_read(accounts[start : start + RESYNCS_PER_ROUND_TRIP])
    return resyncs


def _resync_or_error(tenant_id, account_id) -> Resync | Exception:
    try:
        return ea_resync(tenant_id=tenant_id, account_id=account_id)
    except Exception as exc:  # noqa: BLE001 — as in a round trip of several: each EA's outcome its own
        return exc


def _resyncs_read(accounts: list[tuple[UUID, UUID]]) -> list[Resync | Exception]:
    reads = _resync_reads()
    now = timezone.now()
    statements = [  # each EA's statements as psycopg would send them (its cached parse)
        tenant_statement(tenant_id, *reads_statement(reads, {RESYNC_ACCOUNT: UUID(str(account_id)), RESYNC_NOW: now}))
        for tenant_id, account_id in accounts
    ]
    with connections[SERVICE].cursor() as cursor:
        results = results_of_bound(cursor, statements)
    per_ea = 1 + len(reads)  # the tenant setting's, then each read's
    resyncs: list[Resync | Exception] = []
    for index, (_tenant_id, account_id) in enumerate(accounts):
        rows = results[index * per_ea + 1 : (index + 1) * per_ea]
        instances = [read.instances(own) for read, own in zip(reads, rows, strict=True)]
        try:
            resyncs.append(_resync_of(account_id, *instances))
        except Exception as exc:  # noqa: BLE001 — this EA's alone (no such account, a row its messages cannot carry)
            resyncs.append(exc)
    return resyncs


# Stand-ins for the values each resync puts into its compiled reads (a random id no account has, a time no call
# passes): compiling the three querysets was ~16 % of the process's GIL time in a reconnect storm (issue 21).
RESYNC_ACCOUNT = uuid4()
RESYNC_NOW = datetime(1970, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@functools.cache
def _resync_reads() -> tuple[CompiledRead, ...]:
    both = (RESYNC_ACCOUNT, RESYNC_NOW)
    # the account's columns that the resync reads, not its 45: fewer to send, convert and build, and a query string
    # short enough for psycopg to keep its parsed form (it parses one over 4 KiB on every call)
    account_for_resync = MT5Account.objects.only(*ACCOUNT_MESSAGE_FIELDS, "symbol_id_overrides")
    return (
        compiled_read(account_for_resync.filter(account_id=RESYNC_ACCOUNT), (RESYNC_ACCOUNT,)),
        compiled_read(signals_for_resync(account_id=RESYNC_ACCOUNT, now=RESYNC_NOW), both),
        compiled_read(commands_for_resync(account_id=RESYNC_ACCOUNT, now=RESYNC_NOW), both),
    )


# One statement, so one round trip, as the claim: the function (trading migration 0008) marks the account offline
# only if `epoch` still holds it, then audits; the audit chain's lock is held only until this round trip's own
# commit. In several round trips the lock was held while the thread waited for the GIL between them, and a
# tenant's disconnects (every EA of a restarted process) queued behind each other and behind the new process's
# claims (issue 21). An account the tenant cannot see changes nothing and is not audited.
DISCONNECT_SQL = """
SELECT suho_ea_disconnected(%(tenant_id)s, %(account_id)s, %(epoch)s, %(now)s, %(description)s, %(metadata)s)
"""


@dataclass(frozen=True)
class Disconnected:
    """An EA's connection that ended, for `ea_disconnects`."""

    tenant_id: UUID
    account_id: UUID
    session_id: UUID
    close_code: int | None
    epoch: int | None = None


def ea_disconnected(
    *, tenant_id: UUID, account_id: UUID, session_id: UUID, close_code, epoch: int | None = None
) -> None:
    """Audit the disconnect; the account goes offline only if this was its live session (`epoch`): a replaced
    session closing after its successor connected leaves the account online. An account the tenant cannot see:
    nothing changes, nothing is audited. One round trip (`DISCONNECT_SQL`); the gateway asks `ea_disconnects` for
    the disconnects that wait together, and this is one of them alone."""
    (outcome,) = ea_disconnects([Disconnected(tenant_id, account_id, session_id, close_code, epoch)])
    if outcome is not None:
        raise outcome


def ea_disconnects(disconnects: list[Disconnected]) -> list[Exception | None]:
    """`ea_disconnected` for the disconnects that wait for a database thread together (a draining process closes all
    its EAs at once: each was a thread hop, a pooled connection and a round trip of its own), each its own
    transaction (`_each_its_own_transaction`). Per EA, None, or the exception its disconnect raised."""
    transactions = [(ended.tenant_id, DISCONNECT_SQL, _disconnect_params(ended)) for ended in disconnects]
    return _each_its_own_transaction(transactions, lambda _rows: None)


def _disconnect_params(ended: Disconnected) -> dict:
    return {
        "tenant_id": str(ended.tenant_id), "account_id": str(ended.account_id), "epoch": ended.epoch,
        "now": timezone.now(),
        "description": f"EA disconnected (code {ended.close_code})",
        "metadata": json.dumps({"session_id": str(ended.session_id), "close_code": ended.close_code},
                               cls=DjangoJSONEncoder),
    }  # fmt: skip


def accounts_mark_silent_offline(*, now=None) -> int:
    """Every minute (Celery beat): an account whose EA has sent no heartbeat for two minutes is offline.

    Cross-tenant, so it runs through the operator path; each change is audited in its tenant's chain.
    """
    from suho.routers import operator_path

    now = now or timezone.now()
    with operator_path(), transaction.atomic(using=OPERATOR):
        silent = list(
            MT5Account.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(connection_status="online")
            .filter(models.Q(last_heartbeat_at__lt=now - OFFLINE_AFTER) | models.Q(last_heartbeat_at__isnull=True))
        )
        for account in silent:
            account.connection_status = "offline"
            account.save(update_fields=["connection_status"])
            audit_record(
                tenant_id=account.tenant_id, event_type="ea_offline", category="connection", action="timeout",
                description="No heartbeat for 2 minutes", severity="warning", account_id=account.account_id,
                metadata={"last_heartbeat_at": account.last_heartbeat_at},
            )  # fmt: skip
    return len(silent)


def ea_rate_limit_hold(*, account_id: UUID) -> None:
    """The account's EA was closed with 4008: its reconnects are refused for RATE_LIMIT_RETRY_AFTER_S (every
    process sees it). A Redis failure only loses the hold; it is a brake, not a record."""
    try:
        cache_client().set(rate_limit_hold_key(account_id), "1", ex=RATE_LIMIT_RETRY_AFTER_S)
    except RedisError as exc:
        redis_unavailable(exc)


def ea_rate_limit_hold_left_s(*, account_id) -> int:
    """Seconds the account's reconnects are still refused after a 4008 (0: none)."""
    return _holds_left_s([account_id])[0]


def rate_limit_hold_key(account_id) -> str:
    return f"ea_rate_limited:{account_id}"
