"""A session is one conversation; its messages are ordered by a per-session sequence number."""

from datetime import datetime
from typing import Any, Self

from django.db import models
from django.db.models import BooleanField, ExpressionWrapper, Q


def lease_held_q(now: datetime) -> Q:
    """The lease rule: a turn holds the session's lease and it has not expired."""
    return Q(active_turn_id__isnull=False) & (
        Q(active_turn_expires_at__isnull=True) | Q(active_turn_expires_at__gt=now)
    )


#: ``lease_held_q`` as SQL (``%s`` is now), for the hand-written statements of the hot path
#: (``sessions.statements``); a test holds the two equal.
LEASE_HELD_SQL = (
    "(active_turn_id IS NOT NULL AND "
    "(active_turn_expires_at IS NULL OR active_turn_expires_at > %s))"
)


def pending_call_is_approval(call: dict[str, Any]) -> bool:
    """Whether an entry of ``Session.pending_tool_calls`` is a call that asked for approval."""
    return call.get("kind") == "approval"


class SessionQuerySet(models.QuerySet["Session"]):
    def lease_held(self, now: datetime) -> Self:
        return self.filter(lease_held_q(now))

    def lease_free(self, now: datetime) -> Self:
        return self.exclude(lease_held_q(now))

    def with_lease_held(self, now: datetime) -> Self:
        """Each session with ``lease_held``: the rule computed by the database, in the query."""
        return self.annotate(
            lease_held=ExpressionWrapper(lease_held_q(now), output_field=BooleanField())
        )


class Session(models.Model):
    session_id = models.CharField(max_length=128, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_activity_at = models.DateTimeField(db_index=True)
    # Highest ``Message.seq`` handed out; bumped in the same transaction as each insert.
    last_seq = models.PositiveIntegerField(default=0)
    # How many turns have taken the lease: each turn's number, the prefix of its events' ids
    # (a turn may store nothing, so ``last_seq`` cannot number turns).
    turns_opened = models.PositiveBigIntegerField(default=0, db_default=0)

    # The running turn, if any: a lease that one worker holds and renews. It is taken with a
    # conditional UPDATE, so two workers (or hosts) never run turns of one session at once, and
    # it expires by itself if the worker dies.
    active_turn_id = models.UUIDField(null=True, blank=True)
    active_turn_expires_at = models.DateTimeField(null=True, blank=True)
    # Set by the cancel endpoint; the worker running that turn polls for it.
    cancel_turn_id = models.UUIDField(null=True, blank=True)
    # Tool calls of the last model step still waiting for the client: [{"id", "name"}] for a
    # client-side call's result; {"id", "name", "kind": "approval", "arguments"} for a decision
    # (then "approved": true once given, until the step's last answer runs it). A new user
    # message closes them all with a "not executed" result.
    pending_tool_calls = models.JSONField(null=True, blank=True)

    objects = SessionQuerySet.as_manager()

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


class ToolApproval(models.Model):
    """A tool call that asked for the user's approval, and the decision once given."""

    class Decision(models.TextChoices):
        WAITING = "", "waiting"  # also a call closed by a new message before any answer
        APPROVED = "approved"
        DENIED = "denied"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="approvals")
    # Not unique: some model servers reuse call ids across turns (the latest row counts).
    call_id = models.CharField(max_length=128)
    tool_name = models.CharField(max_length=128)
    # The turn whose model call asked for the tool.
    turn_id = models.UUIDField()
    requested_at = models.DateTimeField()
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    # Arguments that replaced the model's when the call was approved (JSON text), if any.
    arguments = models.TextField(null=True, blank=True)  # noqa: DJ001
    decided_at = models.DateTimeField(null=True, blank=True)
    # The X-Request-ID of the request that carried the decision.
    request_id = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["session", "call_id"], name="tool_approval_call_idx")]

    def __str__(self) -> str:
        return f"{self.session_id} {self.call_id} {self.decision or 'waiting'}"
