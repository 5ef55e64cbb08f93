"""When to call the model again after it failed before its first token."""

import random
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.utils import timezone

from agent_runtime.errors import UpstreamError


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def retry_delay(*, error: UpstreamError, attempt: int, elapsed: float) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None to give up.

    Exponential backoff with jitter, at least the server's ``Retry-After``, bounded by the
    number of attempts and by the total time (``LLM_RETRY_*`` settings).
    """
    if not error.retryable or attempt >= settings.LLM_RETRY_ATTEMPTS:
        return None
    backoff = min(
        settings.LLM_RETRY_MAX_BACKOFF_SECONDS,
        settings.LLM_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1),
    )
    delay = backoff * random.uniform(0.5, 1.0)
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)
    if elapsed + delay > settings.LLM_RETRY_TOTAL_SECONDS:
        return None
    return delay
