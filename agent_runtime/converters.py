"""URL converters: a path segment that cannot name a resource never reaches a view."""

from streaming.protocol import SESSION_ID_PATTERN


class SessionIdConverter:
    """A session id as ``docs/api.md`` defines it; anything else (a NUL byte, which
    PostgreSQL cannot even compare, or a 10 kB segment) is an unknown path: 404."""

    regex = SESSION_ID_PATTERN

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
