"""Django admin runs on the operator path: staff see and change every tenant's rows through the operator role.

The service role sees nothing without a tenant context (row-level security fails closed), so the admin cannot run
on it. Wrapping whole admin requests, rather than each ModelAdmin's queryset, covers everything the admin does —
change lists, forms, foreign-key choices, saves, actions and the services they call — with one rule.
"""

from __future__ import annotations

from django.contrib import admin
from django.db import transaction
from django.urls import reverse

from suho.routers import OPERATOR, operator_path


class OperatorAdminMiddleware:
    """Admin requests from active staff run on the operator path, in one transaction on the operator alias.

    Anyone else (the login page included) stays on the service role; the admin's own permission checks still apply.
    A request that fails rolls the whole transaction back: Django turns the view's exception into a 500 response
    before it reaches a middleware, so without the explicit rollback an action that failed on its second account
    would commit (and publish) what it did to the first (issue 19).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        staff = user is not None and user.is_active and user.is_staff
        if not staff or not request.path.startswith(reverse("admin:index")):
            return self.get_response(request)
        with operator_path(), transaction.atomic(using=OPERATOR):
            response = self.get_response(request)
            if response.status_code >= 500:
                transaction.set_rollback(True, using=OPERATOR)
            return response


class ReadOnlyAdmin(admin.ModelAdmin):
    """The one base for admin pages of rows operators read but never add, edit or delete here (changes go through
    services: the apps' admin actions, the risk monitor, the lifecycle).

    `acts = True` for a page with admin actions: an action needs the change permission, so that permission stays,
    and every field is read-only instead, so the actions are the only way to change a row.
    """

    acts = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return self.acts and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        if self.acts:
            return [field.name for field in self.model._meta.fields]
        return super().get_readonly_fields(request, obj)
