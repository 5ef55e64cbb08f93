"""The admin, for people who debug conversations: sessions and their transcripts, read-only.

Sessions cannot be added or edited here, and messages are not registered at all (so they can
neither be added nor edited); a user with the delete permission may delete sessions, through
the same service as the API.
"""

import json
from typing import Any

from django.contrib import admin
from django.db import connection
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from sessions.models import Message, Session
from sessions.records import MessageInfo
from sessions.selectors import message_transcript, session_admin_queryset
from sessions.services import session_delete, session_delete_many

#: Messages per transcript page: a 500-message session is five readable pages.
TRANSCRIPT_PAGE_SIZE = 100
#: Longer contents are collapsed behind their first lines.
COLLAPSE_AFTER_CHARS = 1500
PREVIEW_CHARS = 240


class OutcomeFilter(admin.SimpleListFilter):
    title = "turn outcome"
    parameter_name = "outcome"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("failed", "a turn failed"),
            ("interrupted", "a turn was interrupted or cancelled"),
            ("clean", "every turn completed"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        if self.value() == "failed":
            return queryset.filter(has_failed=True)
        if self.value() == "interrupted":
            return queryset.filter(has_interrupted=True)
        if self.value() == "clean":
            return queryset.filter(has_failed=False, has_interrupted=False)
        return queryset


class TurnRunningFilter(admin.SimpleListFilter):
    title = "turn running"
    parameter_name = "running"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "yes"), ("no", "no")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        if self.value() == "yes":
            return queryset.lease_held(timezone.now())
        if self.value() == "no":
            return queryset.lease_free(timezone.now())
        return queryset


def _pretty_arguments(arguments: Any) -> str:
    """OpenAI sends tool arguments as a JSON string; indent it when it parses."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return arguments  # shown as the model sent it, invalid or not
    return json.dumps(arguments, indent=2, ensure_ascii=False)


def _transcript_entry(message: MessageInfo) -> dict[str, Any]:
    calls = [
        {
            "id": call.get("id", ""),
            "name": (call.get("function") or {}).get("name", ""),
            "arguments": _pretty_arguments((call.get("function") or {}).get("arguments", "")),
        }
        for call in message.tool_calls or ()
        if isinstance(call, dict)
    ]
    return {
        "message": message,
        "tool_calls": calls,
        "collapsed": len(message.content) > COLLAPSE_AFTER_CHARS,
        "preview": message.content[:PREVIEW_CHARS],
    }


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = (
        "session_id",
        "message_total",
        "last_activity_at",
        "last_model",
        "tokens",
        "problems",
        "turn_running",
    )
    list_filter = (OutcomeFilter, TurnRunningFilter, "created_at")
    search_fields = ("session_id", "messages__content")
    search_help_text = "A session id, or any text from its messages."
    date_hierarchy = "last_activity_at"
    ordering = ("-last_activity_at", "-id")
    list_per_page = 50
    # Skips a COUNT(*) over every session for each filtered or searched page.
    show_full_result_count = False
    fields = (
        "session_id",
        "created_at",
        "last_activity_at",
        "message_total",
        "tokens",
        "last_model",
        "turn_running",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Session]:
        return session_admin_queryset()

    # --- Columns -------------------------------------------------------------------------------

    @admin.display(description="messages", ordering="message_count")
    def message_total(self, session: Session) -> int:
        return session.message_count  # type: ignore[attr-defined]

    @admin.display(description="model", ordering="model")
    def last_model(self, session: Session) -> str:
        return session.model or "—"  # type: ignore[attr-defined]

    @admin.display(description="total tokens", ordering="total_tokens")
    def tokens(self, session: Session) -> int | str:
        total = session.total_tokens  # type: ignore[attr-defined]
        return "—" if total is None else total

    @admin.display(description="problems")
    def problems(self, session: Session) -> str:
        """Whether a turn failed, or was interrupted or cancelled; a dash when none did."""
        labels = [
            label
            for flag, label in (
                (session.has_failed, "failed"),  # type: ignore[attr-defined]
                (session.has_interrupted, "interrupted"),  # type: ignore[attr-defined]
            )
            if flag
        ]
        if not labels:
            return "—"
        return format_html(
            '<strong class="problems" style="color: var(--error-fg)">{}</strong>',
            ", ".join(labels),
        )

    @admin.display(description="turn running")
    def turn_running(self, session: Session) -> str:
        return "running" if session.lease_held else "—"

    # --- The transcript on the session's page --------------------------------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        if object_id.isdigit():
            session_pk = int(object_id)
            # A number no primary key can hold names no session (and SQLite cannot take it).
            _, largest = connection.ops.integer_field_range(Session._meta.pk.get_internal_type())
            if session_pk > largest:
                raise Http404("No such session.")
            transcript = message_transcript(
                session_pk=session_pk,
                page=request.GET.get("page"),
                per_page=TRANSCRIPT_PAGE_SIZE,
            )
            extra_context["transcript"] = transcript
            extra_context["transcript_entries"] = [
                _transcript_entry(m) for m in transcript.messages
            ]
            extra_context["transcript_pages"] = range(1, transcript.num_pages + 1)
        return super().change_view(request, object_id, form_url, extra_context)

    # --- Permissions: read-only, but deletable -------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Session | None = None) -> bool:
        return False

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """A summary per session instead of one line per message (sessions can be long)."""
        sessions = list(objs)
        deleted: list[Any] = []
        for session in sessions:
            url = reverse("admin:agent_sessions_session_change", args=[session.pk])
            deleted.append(format_html('Session: <a href="{}">{}</a>', url, session.session_id))
            deleted.append([f"{session.message_count} messages"])
        counts = {
            str(Session._meta.verbose_name_plural): len(sessions),
            str(Message._meta.verbose_name_plural): sum(s.message_count for s in sessions),
        }
        return deleted, counts, set(), []

    def delete_model(self, request: HttpRequest, obj: Session) -> None:
        session_delete(session_id=obj.session_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        session_delete_many(session_pks=list(queryset.values_list("pk", flat=True)))
