"""The one tenant-context helper: row-level security reads `app.current_tenant_id`, set for one transaction only.

`set_config(..., true)` is transaction-scoped, so a pooled connection can never carry one tenant's context into
another's work; with no context every tenant table reads empty (fail closed).
"""

from __future__ import annotations

from contextlib import contextmanager
from uuid import UUID

from django.db import connections, transaction

from suho.routers import SERVICE

TENANT_SETTING = "app.current_tenant_id"


@contextmanager
def tenant_context(tenant_id: UUID | str, *, using: str = SERVICE):
    """Open a transaction on `using` with the tenant context set; nested use switches tenant until it ends.

    Nested inside another transaction the block is a savepoint, and releasing a savepoint keeps what `set_config`
    did in it: so on the way out the outer context (or none) is put back explicitly.
    """
    tenant = str(UUID(str(tenant_id)))  # refuses anything that is not a UUID before it reaches SQL
    connection = connections[using]
    nested = connection.in_atomic_block
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            if nested:
                cursor.execute("SELECT coalesce(current_setting(%s, true), '')", [TENANT_SETTING])
                outer = cursor.fetchone()[0]
            cursor.execute("SELECT set_config(%s, %s, true)", [TENANT_SETTING, tenant])
        yield
        if nested:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config(%s, %s, true)", [TENANT_SETTING, outer])


@contextmanager
def tenant_context_on_first_query(tenant_id: UUID | str, *, using: str = SERVICE):
    """`tenant_context` for a block that seldom queries (a cache miss's fallback read): its transaction and the tenant
    setting begin with its first query, so a block that queries nothing costs no round trip (three with
    `tenant_context`: BEGIN, the setting, COMMIT). Nested in a transaction it is `tenant_context`."""
    tenant = str(UUID(str(tenant_id)))  # refuses anything that is not a UUID before it reaches SQL
    connection = connections[using]
    if connection.in_atomic_block:
        with tenant_context(tenant, using=using):
            yield
        return
    pending = [True]

    def tenant_first(execute, sql, params, many, context):
        if pending:  # through the cursor, not `execute`: that is executemany's for a first executemany
            pending.clear()
            context["cursor"].execute("SELECT set_config(%s, %s, true)", [TENANT_SETTING, tenant])
        return execute(sql, params, many, context)

    with transaction.atomic(using=using), connection.execute_wrapper(tenant_first):
        yield


def current_tenant(*, using: str = SERVICE) -> UUID | None:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT nullif(current_setting(%s, true), '')", [TENANT_SETTING])
        value = cursor.fetchone()[0]
    return UUID(value) if value else None


class TenantContextMiddleware:
    """Every request of a signed-in user runs in one transaction under that user's tenant."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        tenant_id = getattr(user, "tenant_id", None) if user is not None and user.is_authenticated else None
        if tenant_id is None:
            return self.get_response(request)
        with tenant_context(tenant_id):
            return self.get_response(request)
