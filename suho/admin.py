"""Admin for the outbox (operators see what is pending or parked, and re-queue parked messages once fixed) and
for the last run of each scheduled task.

Runs on the operator path (suho.admin_site.OperatorAdminMiddleware). Rows are never edited or deleted here: a
parked message is evidence of something JetStream refused, and re-queueing is the only change (audited through the
admin's log entry).
"""

from __future__ import annotations

from django.contrib import admin, messages

from suho.admin_site import ReadOnlyAdmin
from suho.models import BeatTaskRun, OutboxMessage
from suho.outbox import outbox_requeue

PAYLOAD_SHOWN = 2000  # characters of the payload on the detail page


class ParkedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("parked", "parked"), ("pending", "pending"), ("published", "published")]

    def queryset(self, request, queryset):
        if self.value() == "parked":
            return queryset.filter(parked_at__isnull=False)
        if self.value() == "pending":
            return queryset.filter(published_at__isnull=True, parked_at__isnull=True)
        if self.value() == "published":
            return queryset.filter(published_at__isnull=False)
        return queryset


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "tenant", "subject", "msg_id", "state", "attempts", "refusals", "last_error",
                    "published_at", "parked_at")  # fmt: skip
    list_filter = (ParkedFilter,)
    list_select_related = ("tenant",)
    search_fields = ("subject", "msg_id", "=id")
    ordering = ("-id",)
    exclude = ("payload",)
    actions = ["requeue"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields if field.name != "payload"] + ["payload_text"]

    @admin.display(description="payload")
    def payload_text(self, obj) -> str:
        return bytes(obj.payload).decode("utf-8", "replace")[:PAYLOAD_SHOWN]

    @admin.action(description="Re-queue (parked messages only)", permissions=["change"])
    def requeue(self, request, queryset):
        parked = list(queryset.filter(parked_at__isnull=False, published_at__isnull=True))
        requeued = outbox_requeue(message_ids=[message.id for message in parked])
        for message in parked:
            self.log_change(request, message, f"Re-queued parked outbox message {message.msg_id}")
        self.message_user(request, f"Re-queued {requeued} parked message(s).", messages.SUCCESS)
        if requeued < queryset.count():
            self.message_user(request, "Messages that were not parked were left alone.", messages.WARNING)


@admin.register(BeatTaskRun)
class BeatTaskRunAdmin(ReadOnlyAdmin):
    """The last run of each scheduled task (suho.beat); the operator dashboard flags overdue ones."""

    list_display = ("task", "started_at", "finished_at", "state")
    list_filter = ("state",)
    search_fields = ("task",)
    ordering = ("task",)
