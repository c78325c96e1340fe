"""Which PostgreSQL role serves a query: the service role by default, the operator role on the explicit path.

- Identity (tenants, users) is looked up before any tenant is known (log-in, session load, API-key check),
  so it is read and written through the operator role; tenant data never is, unless a caller opts in.
- `operator_path()` opts a block of code into the operator role: Django admin for staff, cross-tenant jobs.
- Only the owner role migrates.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

SERVICE = "default"
OWNER = "owner"
OPERATOR = "operator"
IDENTITY_MODELS = {("accounts", "tenant"), ("accounts", "user")}

_operator_path: ContextVar[bool] = ContextVar("suho_operator_path", default=False)


@contextmanager
def operator_path():
    """Route every query in this block through the operator role (bypasses row-level security: staff only)."""
    token = _operator_path.set(True)
    try:
        yield
    finally:
        _operator_path.reset(token)


def on_operator_path() -> bool:
    return _operator_path.get()


class RoleRouter:
    def _alias(self, model) -> str:
        if _operator_path.get() or (model._meta.app_label, model._meta.model_name) in IDENTITY_MODELS:
            return OPERATOR
        return SERVICE

    def db_for_read(self, model, **hints):
        return self._alias(model)

    def db_for_write(self, model, **hints):
        return self._alias(model)

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the three aliases are one database seen through different roles

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == OWNER
