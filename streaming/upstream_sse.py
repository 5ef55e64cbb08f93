"""Incremental decoding of the upstream's Server-Sent Events, from bytes as they arrive.

Model servers send one event per token, each a single ``data: {...}`` line and a blank line.
That event is cut out of the bytes directly, without decoding lines one by one. Any other
event (several lines, other fields, comments) and any stream that uses CR line ends goes
through :class:`EventLines`, which follows the event-stream rules of the HTML standard.
"""

from __future__ import annotations

import codecs
import re

_DATA = b"data: "
_LINE = re.compile(r"([^\r\n]*)(\r\n|\r|\n)")


class EventLines:
    """The standard's line-by-line decoder; only the ``data`` field matters here."""

    def __init__(self) -> None:
        self.data: list[str] = []
        self.partial = ""
        #: The last chunk ended in CR: a LF starting the next one belongs to that line end.
        self.after_cr = False

    def feed(self, text: str) -> list[str]:
        if self.after_cr and text.startswith("\n"):
            text = text[1:]
        self.after_cr = False
        text = self.partial + text
        found: list[str] = []
        end = 0
        for match in _LINE.finditer(text):
            end = match.end()
            self.line(match.group(1), found)
        if end and text[end - 1] == "\r":
            self.after_cr = True
        self.partial = text[end:]
        return found

    def line(self, line: str, found: list[str]) -> None:
        if not line:
            if self.data:
                found.append("\n".join(self.data))
                self.data = []
            return
        if line.startswith(":"):
            return  # a comment
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self.data.append(value)


class UpstreamEvents:
    """Feed bytes, get the ``data`` of each event they complete (bytes or str)."""

    def __init__(self) -> None:
        self.buffer = b""
        # Set once the stream shows a CR: from then on, everything goes line by line.
        self.lines: EventLines | None = None
        self.text = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes) -> list[bytes | str]:
        # ``find``, not ``in``: ``b"x" in data`` first tries ``b"x"`` as an integer and
        # builds a TypeError to discard, for every call.
        if self.lines is not None or chunk.find(b"\r") >= 0:
            return self._feed_lines(chunk)
        # The usual chunk, one whole one-line data event, in fewer steps than the loop below.
        if (
            not self.buffer
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk.endswith(b"\n\n")
            and chunk.startswith(_DATA)
        ):
            return [chunk[6:-2]]
        buffer = self.buffer + chunk if self.buffer else chunk
        found: list[bytes | str] = []
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            block = buffer[start:end]
            start = end + 2
            if block.startswith(_DATA) and block.find(b"\n") < 0:
                found.append(block[6:])
            else:
                found.extend(EventLines().feed(block.decode("utf-8", errors="replace") + "\n\n"))
        self.buffer = buffer[start:]
        return found

    def close(self) -> list[bytes | str]:
        """At the body's end. An unfinished event is dropped, as the standard says."""
        return []

    def _feed_lines(self, chunk: bytes) -> list[bytes | str]:
        if self.lines is None:
            self.lines = EventLines()
            chunk, self.buffer = self.buffer + chunk, b""
        text = self.text.decode(chunk)
        return list(self.lines.feed(text)) if text else []
