"""GDPR: consents (record, withdraw), a user's data as one JSON document, and erasure by pseudonymisation.

Erasure keeps what the law requires us to keep (Art. 17(3)(b): MiFID II record keeping, the audit trail):
trade orders, executions, signals, balances and every audit row stay, keyed by UUIDs that no longer lead to a
name. What identifies the person goes: user name (→ `erased-<hash>`), e-mail, first and last name, password,
MT5 account labels, the IP addresses and user agents of consents and EA sessions. Audit rows are never modified —
the hash chain must keep verifying — and they are written to hold ids, not personal data (descriptions name
accounts by label or login at the time; log-in failures keep a hash of an unknown user name, not the name).
IP addresses in audit rows are kept as security logs (legitimate interest) until the audit log's retention.
"""

from __future__ import annotations

import hashlib
import json
from uuid import UUID

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from accounts.models import ApiKey, EASession, MT5Account, User
from compliance.models import RiskEvent, UserConsent
from signals.models import SignalExecution, TradingSignal
from suho.audit import audit_record
from suho.routers import OPERATOR, operator_path
from suho.tenancy import tenant_context
from trading.models import TradeOrder

CONSENT_NOT_GIVEN = "no active consent for purpose {purpose!r}"
USER_HAS_NO_TENANT = "user {user_id} belongs to no tenant"
ERASED_PREFIX = "erased-"


def consent_record(
    *, user: User, purpose: str, version: str, ip_address: str | None = None, user_agent: str = ""
) -> UserConsent:
    """Record that `user` consented to `purpose` in `version` (a new row each time: the history is the record)."""
    _tenant_of(user)
    with tenant_context(user.tenant_id):
        consent = UserConsent.objects.create(
            time=timezone.now(), tenant_id=user.tenant_id, user=user, purpose=purpose, version=version,
            granted=True, ip_address=ip_address, user_agent=user_agent[:300],
        )  # fmt: skip
        audit_record(
            tenant_id=user.tenant_id, event_type="consent_granted", category="gdpr", action="grant",
            description=f"Consent to {purpose} v{version}", user_id=user.pk, ip_address=ip_address,
            metadata={"consent_id": consent.id, "purpose": purpose, "version": version},
        )  # fmt: skip
    return consent


def consent_withdraw(*, user: User, purpose: str, ip_address: str | None = None) -> int:
    """Withdraw every active consent of `user` to `purpose` (rows kept, marked withdrawn); ValueError if none."""
    _tenant_of(user)
    now = timezone.now()
    with tenant_context(user.tenant_id):
        withdrawn = UserConsent.objects.filter(user=user, purpose=purpose, granted=True).update(
            granted=False, withdrawn_at=now
        )
        if not withdrawn:
            raise ValueError(CONSENT_NOT_GIVEN.format(purpose=purpose))
        audit_record(
            tenant_id=user.tenant_id, event_type="consent_withdrawn", category="gdpr", action="withdraw",
            description=f"Consent to {purpose} withdrawn", user_id=user.pk, ip_address=ip_address,
            metadata={"purpose": purpose, "consents": withdrawn},
        )  # fmt: skip
    return withdrawn


def _tenant_of(user: User) -> UUID:
    if user.tenant_id is None:
        raise ValueError(USER_HAS_NO_TENANT.format(user_id=user.pk))
    return user.tenant_id


def _rows(queryset, *, exclude: tuple[str, ...] = ()) -> list[dict]:
    rows = []
    for obj in queryset:
        row = model_to_dict(obj, exclude=list(exclude))
        row[obj._meta.pk.name] = obj.pk
        rows.append(json.loads(json.dumps(row, cls=DjangoJSONEncoder)))
    return rows


def user_data_export(*, user: User) -> dict:
    """Everything we hold about `user` (GDPR Art. 15/20), as one JSON-ready document; nothing of anyone else."""
    document = {
        "exported_at": timezone.now().isoformat(),
        "user": {
            "id": str(user.pk), "username": user.username, "email": user.email, "first_name": user.first_name,
            "last_name": user.last_name, "date_joined": user.date_joined.isoformat(),
            "last_login": user.last_login.isoformat() if user.last_login else None, "tenant_id": str(user.tenant_id),
        },
    }  # fmt: skip
    if user.tenant_id is None:
        return document
    with tenant_context(user.tenant_id):
        accounts = MT5Account.objects.filter(user=user)
        account_ids = list(accounts.values_list("account_id", flat=True))
        document |= {
            "mt5_accounts": _rows(accounts.order_by("created_at")),
            "api_keys": _rows(ApiKey.objects.filter(account_id__in=account_ids), exclude=("secret_hash",)),
            "ea_sessions": _rows(EASession.objects.filter(account_id__in=account_ids).order_by("created_at")),
            "trades": _rows(TradeOrder.objects.filter(account_id__in=account_ids).order_by("time")),
            "signals": _rows(TradingSignal.objects.filter(account_id__in=account_ids).order_by("time")),
            "executions": _rows(SignalExecution.objects.filter(account_id__in=account_ids).order_by("time")),
            "risk_events": _rows(RiskEvent.objects.filter(account_id__in=account_ids).order_by("time")),
            "consents": _rows(UserConsent.objects.filter(user=user).order_by("time")),
        }
        audit_record(
            tenant_id=user.tenant_id, event_type="user_data_exported", category="gdpr", action="export",
            description="Personal data exported", user_id=user.pk,
            metadata={"accounts": len(account_ids), "trades": len(document["trades"])},
        )  # fmt: skip
    return document


def user_erase(*, user: User, actor: str = "") -> User:
    """Pseudonymise `user` (see the module's docstring); financial records and the audit chain stay intact.

    One transaction on the operator path (an operator's action: the user row is identity, the rest tenant data).
    """
    pseudonym = ERASED_PREFIX + hashlib.sha256(str(user.pk).encode()).hexdigest()[:16]
    with operator_path(), transaction.atomic(using=OPERATOR):
        locked = User.objects.select_for_update().get(pk=user.pk)
        account_ids = list(MT5Account.objects.filter(user=locked).values_list("account_id", flat=True))
        MT5Account.objects.filter(account_id__in=account_ids).update(name="", ea_settings_reported={})
        EASession.objects.filter(account_id__in=account_ids).update(remote_addr=None)
        ApiKey.objects.filter(account_id__in=account_ids).update(label="")
        UserConsent.objects.filter(user=locked).update(ip_address=None, user_agent="")
        locked.username, locked.email, locked.first_name, locked.last_name = pseudonym, "", "", ""
        locked.is_active, locked.totp_secret = False, ""
        locked.set_unusable_password()
        locked.save(update_fields=["username", "email", "first_name", "last_name", "is_active", "password",
                                   "totp_secret"])  # fmt: skip
        audit_record(
            tenant_id=locked.tenant_id, event_type="user_erased", category="gdpr", action="erase",
            description="Personal data pseudonymised", user_id=locked.pk,
            metadata={"accounts": [str(a) for a in account_ids], "by": actor},
        )  # fmt: skip
    return locked
