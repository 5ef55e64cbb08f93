"""Writes to sessions and messages. Each public function is one short transaction.

One module per job; every service is importable from here (``services.turn_open``).
"""

from sessions.services.answers import tool_approval_submit, tool_result_submit
from sessions.services.common import NOT_EXECUTED
from sessions.services.deletion import (
    DEFAULT_PRUNE_BATCH,
    session_delete,
    session_delete_many,
    session_prune,
)
from sessions.services.turns import (
    turn_abandon,
    turn_cancel_request,
    turn_leases_renew,
    turn_open,
    turn_record,
    turn_regenerate_open,
    turn_step_record,
)

__all__ = [
    "DEFAULT_PRUNE_BATCH",
    "NOT_EXECUTED",
    "session_delete",
    "session_delete_many",
    "session_prune",
    "tool_approval_submit",
    "tool_result_submit",
    "turn_abandon",
    "turn_cancel_request",
    "turn_leases_renew",
    "turn_open",
    "turn_record",
    "turn_regenerate_open",
    "turn_step_record",
]
