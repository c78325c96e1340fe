"""One `ReadOnlyAdmin` (suho.admin_site) for every page of rows operators read: nobody adds or deletes there, and
only the pages with actions (which need the change permission) keep it, with every field read-only."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from accounts.models import User
from suho.admin_site import ReadOnlyAdmin


def test_read_only_pages_refuse_add_and_delete_and_edit_only_through_their_actions():
    request = RequestFactory().get("/admin/")
    request.user = User(is_staff=True, is_active=True, is_superuser=True)
    pages = {model._meta.label: page for model, page in admin.site._registry.items() if isinstance(page, ReadOnlyAdmin)}
    assert {"compliance.AuditLog", "trading.TradeOrder", "quotes.BrokerQuote", "signals.TradingSignal"} <= set(pages)
    for label, page in pages.items():
        assert not page.has_add_permission(request), label
        assert not page.has_delete_permission(request), label
        assert page.has_change_permission(request) is page.acts, label
        if page.acts:
            assert page.actions, label  # the change permission is there for them
            editable = {f.name for f in page.model._meta.fields} - set(page.get_readonly_fields(request))
            assert editable <= {"key_hash", "token_hash"}, label  # those two are excluded from the form instead
    request.user = AnonymousUser()
    assert not any(page.has_change_permission(request) for page in pages.values())
