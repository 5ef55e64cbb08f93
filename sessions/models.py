"""A session is one conversation; its messages are ordered by a per-session sequence number."""

from django.db import models
from django.db.models import Q


class Session(models.Model):
    session_id = models.CharField(max_length=128, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_activity_at = models.DateTimeField(db_index=True)
    # Highest ``Message.seq`` handed out; bumped in the same transaction as each insert.
    last_seq = models.PositiveIntegerField(default=0)

    # The running turn, if any: a lease that one worker holds and renews. It is taken with a
    # conditional UPDATE, so two workers (or hosts) never run turns of one session at once, and
    # it expires by itself if the worker dies.
    active_turn_id = models.UUIDField(null=True, blank=True)
    active_turn_expires_at = models.DateTimeField(null=True, blank=True)
    # Set by the cancel endpoint; the worker running that turn polls for it.
    cancel_turn_id = models.UUIDField(null=True, blank=True)
    # Tool calls of the last model step still waiting for a result from the client:
    # [{"id", "name"}]. A new user message closes them with a "not executed" result.
    pending_tool_calls = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-last_activity_at"]
        indexes = [
            models.Index(fields=["-last_activity_at", "-id"], name="session_activity_idx"),
        ]

    def __str__(self) -> str:
        return self.session_id


class Message(models.Model):
    class Role(models.TextChoices):
        SYSTEM = "system"
        USER = "user"
        ASSISTANT = "assistant"
        TOOL = "tool"

    class Status(models.TextChoices):
        COMPLETE = "complete"
        INTERRUPTED = "interrupted"  # the client went away mid-stream
        CANCELLED = "cancelled"  # stopped by the cancel endpoint or a newer turn
        FAILED = "failed"  # the upstream failed

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    # The turn that wrote this message (a user message and what answered it share one).
    turn_id = models.UUIDField(null=True, blank=True)
    # The client's idempotency key for a user message. NULL, not "", when absent: the unique
    # constraint below only covers messages that have one.
    client_message_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    model = models.CharField(max_length=200, blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True, default="")
    # OpenAI-format tool calls of an assistant message: [{"id","type","function":{...}}].
    tool_calls = models.JSONField(null=True, blank=True)
    # For a tool message: the id of the call it answers; plus which tool ran.
    tool_call_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    tool_name = models.CharField(max_length=128, blank=True, default="")
    # Replaced by a regenerated answer: kept for the record, never sent upstream again.
    superseded = models.BooleanField(default=False, db_default=False)  # raw INSERTs omit it
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["session", "seq"], name="message_session_seq_uniq"),
            models.UniqueConstraint(
                fields=["session", "client_message_id"],
                condition=Q(client_message_id__isnull=False),
                name="message_client_id_uniq",
            ),
        ]
        indexes = [
            # Finding a pending call's result; some model servers reuse call ids across turns,
            # so this is not unique (the service rejects a second result within a step).
            models.Index(
                fields=["session", "tool_call_id"],
                condition=Q(tool_call_id__isnull=False),
                name="message_tool_call_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.seq} {self.role}"
