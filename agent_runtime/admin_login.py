"""The admin login's throttling (django-axes), as configured in settings."""

from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """The address failed logins are counted under: ``REMOTE_ADDR``.

    uvicorn sets it from ``X-Forwarded-For`` only for a peer listed in ``FORWARDED_ALLOW_IPS``;
    django-axes would otherwise use django-ipware when installed, which reads forwarding
    headers from any client.
    """
    return request.META.get("REMOTE_ADDR")
