from django.contrib import admin

from sessions.models import Message, Session


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("seq", "role", "status", "content", "tool_call_id", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("seq",)

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("session_id", "last_activity_at", "created_at")
    search_fields = ("session_id",)
    readonly_fields = ("session_id", "created_at", "updated_at", "last_activity_at", "last_seq")
    exclude = ("active_turn_id", "active_turn_expires_at", "cancel_turn_id")
    inlines = [MessageInline]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
