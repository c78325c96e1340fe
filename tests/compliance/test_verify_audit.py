"""The audit log is append-only for the application and tamper-evident for everyone: `verify_audit` recomputes each
tenant's hash chain and names the first broken row (seed §8.1, docs/decisions/0004)."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import authenticate
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connections, transaction
from django.test import Client
from factories import make_account, make_audit, make_tenant, make_user

from accounts.models import MT5Account, User
from compliance.audit import (
    AUDIT_PREV_HASH_MISMATCH,
    AUDIT_ROW_HASH_MISMATCH,
    AUDIT_SEQ_GAP,
    PLATFORM,
    audit_verify,
    audit_verify_alert,
)
from compliance.models import AuditLog
from suho.routers import operator_path
from suho.tenancy import tenant_context


@pytest.fixture
def chain(committed):
    tenant = make_tenant()
    rows = [make_audit(tenant, event_description=f"event {n}") for n in range(5)]
    return tenant, rows


def owner_tamper(tenant, *statements):
    """As the tables' owner, with the append-only trigger disabled for one transaction (what a DBA could do)."""
    with tenant_context(tenant.id, using="owner"), connections["owner"].cursor() as cursor:
        cursor.execute("ALTER TABLE mt5_audit_log DISABLE TRIGGER audit_append_only")
        for sql, params in statements:
            cursor.execute(sql, params)
        cursor.execute("ALTER TABLE mt5_audit_log ENABLE TRIGGER audit_append_only")


def verify(*args) -> tuple[int, str, str]:
    from io import StringIO

    out, err = StringIO(), StringIO()
    try:
        call_command("verify_audit", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_an_intact_chain_verifies(chain):
    tenant, _ = chain
    code, out, _ = verify("--tenant", str(tenant.id))
    assert code == 0
    assert f"chain {tenant.id}: 5 rows, intact" in out


@pytest.mark.parametrize("alias", ["default", "operator"])
def test_the_application_roles_cannot_edit_an_audit_row(chain, alias):
    tenant, rows = chain
    with tenant_context(tenant.id, using=alias):
        with pytest.raises(DatabaseError, match=r"permission denied|append-only"), transaction.atomic(using=alias):
            with connections[alias].cursor() as cursor:
                cursor.execute("UPDATE mt5_audit_log SET event_description = 'x' WHERE id = %s", [rows[2].pk])
    assert verify("--tenant", str(tenant.id))[0] == 0


def test_an_owner_edit_with_the_trigger_disabled_is_named_by_verify_audit(chain):
    tenant, rows = chain
    owner_tamper(tenant, ("UPDATE mt5_audit_log SET event_description = 'rewritten' WHERE id = %s", [rows[2].pk]))
    with tenant_context(tenant.id):
        assert AuditLog.objects.get(pk=rows[2].pk).event_description == "rewritten"  # the edit happened

    code, _, err = verify("--tenant", str(tenant.id))
    assert code == 1
    assert f"row id={rows[2].pk} " in err
    assert "chain_seq=3" in err
    assert AUDIT_ROW_HASH_MISMATCH in err
    (report,) = audit_verify(tenant=tenant.id)
    assert (report.first_break.row_id, report.first_break.chain_seq) == (rows[2].pk, 3)


def test_an_edit_that_recomputes_its_own_hash_breaks_the_next_link(chain):
    tenant, rows = chain
    owner_tamper(
        tenant,
        ("UPDATE mt5_audit_log SET event_description = 'rewritten' WHERE id = %s", [rows[1].pk]),
        ("UPDATE mt5_audit_log l SET row_hash = suho_audit_hash(prev_hash, l) WHERE id = %s", [rows[1].pk]),
    )
    (report,) = audit_verify(tenant=tenant.id)
    assert (report.first_break.row_id, report.first_break.problem) == (rows[2].pk, AUDIT_PREV_HASH_MISMATCH)


def test_a_removed_row_is_a_gap_in_the_sequence(chain):
    tenant, rows = chain
    owner_tamper(tenant, ("DELETE FROM mt5_audit_log WHERE id = %s", [rows[3].pk]))
    (report,) = audit_verify(tenant=tenant.id)
    assert report.first_break.row_id == rows[4].pk
    assert report.first_break.problem == AUDIT_SEQ_GAP.format(seq=5, prev=3)


def test_verify_audit_walks_every_chain_and_fails_if_any_is_broken(chain):
    tenant, rows = chain
    other = make_tenant()
    make_audit(other)
    assert verify()[0] == 0
    owner_tamper(tenant, ("UPDATE mt5_audit_log SET severity = 'critical' WHERE id = %s", [rows[0].pk]))
    code, out, err = verify()
    assert code == 1
    assert f"chain {other.id}: 1 rows, intact" in out
    assert f"Audit chain {tenant.id} is broken at row id={rows[0].pk}" in err


def test_log_in_log_out_and_failures_are_audited_in_the_right_chain(committed):
    tenant = make_tenant()
    trader = make_user(tenant)
    trader.set_password("correct horse battery")
    with operator_path():
        trader.save()
        staff = User.objects.create_user(username="ops-auditor", password="staff password 1", is_staff=True)

    client = Client(REMOTE_ADDR="203.0.113.7")
    assert client.login(username=trader.username, password="correct horse battery")
    client.logout()
    assert authenticate(username=trader.username, password="wrong") is None
    assert authenticate(username="nobody-such", password="wrong") is None
    assert Client().login(username="ops-auditor", password="staff password 1")

    with tenant_context(tenant.id):
        tenant_rows = list(AuditLog.objects.order_by("chain_seq").values_list("event_type", "user_id"))
    assert tenant_rows == [
        ("user_logged_in", trader.pk), ("user_logged_out", trader.pk), ("user_login_failed", trader.pk)
    ]  # fmt: skip
    with operator_path():
        platform = list(AuditLog.objects.filter(tenant__isnull=True).order_by("chain_seq")
                        .values_list("event_type", "user_id", "metadata"))  # fmt: skip
    assert [(kind, user) for kind, user, _ in platform] == [("user_login_failed", None), ("user_logged_in", staff.pk)]
    assert "nobody-such" not in str(platform[0][2]) and len(platform[0][2]["username_sha256"]) == 16
    assert all(report.ok for report in audit_verify())
    assert audit_verify(tenant=PLATFORM)[0].rows == 2


def test_an_admin_change_is_audited_in_the_changed_rows_tenant_chain(committed):
    tenant = make_tenant()
    account = make_account(tenant, make_user(tenant))
    with operator_path():
        staff = User.objects.create_user(username="ops-admin", password="staff password 2", is_staff=True)
        LogEntry.objects.create(
            user_id=staff.pk, content_type=ContentType.objects.get_for_model(MT5Account), object_id=str(account.pk),
            object_repr=str(account), action_flag=CHANGE,
            change_message='[{"changed": {"fields": ["Max daily loss"]}}]',
        )  # fmt: skip
    with tenant_context(tenant.id):
        row = AuditLog.objects.get(event_category="admin")
    assert (row.event_type, row.user_id, row.metadata["object_id"]) == ("admin_update", staff.pk, str(account.pk))
    assert row.metadata["change"] == "Changed Max daily loss."


def test_the_daily_verification_tells_operators_which_row_broke(chain, settings, mailoutbox):
    tenant, rows = chain
    settings.RISK_ALERT_EMAILS = ["ops@example.com"]
    assert audit_verify_alert() == 0 and mailoutbox == []
    owner_tamper(tenant, ("UPDATE mt5_audit_log SET action = 'forged' WHERE id = %s", [rows[4].pk]))
    assert audit_verify_alert() == 1
    assert [m.subject for m in mailoutbox] == [f"[Suho audit] chain {tenant.id} broken"]
    assert f"row_id: {rows[4].pk}" in mailoutbox[0].body
