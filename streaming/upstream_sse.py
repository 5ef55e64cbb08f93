"""Incremental decoding of the upstream's Server-Sent Events, from bytes as they arrive.

Model servers send one event per token, each a single ``data: {...}`` line and a blank line.
That event is cut out of the bytes directly, once per token, without decoding lines one by
one. Any other event (several lines, other fields, comments) and any stream that uses CR line
ends goes through httpx-sse's decoders instead, so the spec's rules are the library's.
"""

from __future__ import annotations

import codecs

from httpx_sse._decoders import SSEDecoder, SSELineDecoder

_DATA = b"data: "


class UpstreamEvents:
    """Feed bytes, get the ``data`` of each event they complete (bytes or str)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.decoder = SSEDecoder()
        # Set once the stream shows a CR: from then on, the library's line decoder.
        self.lines: SSELineDecoder | None = None
        self.text = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes) -> list[bytes | str]:
        if self.lines is not None or b"\r" in chunk:
            return self._feed_lines(chunk)
        buffer = self.buffer + chunk if self.buffer else chunk
        found: list[bytes | str] = []
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            block = buffer[start:end]
            start = end + 2
            if block.startswith(_DATA) and b"\n" not in block:
                found.append(block[6:])
            else:
                data = self._decode_block(block)
                if data is not None:
                    found.append(data)
        self.buffer = buffer[start:]
        return found

    def close(self) -> list[bytes | str]:
        """At the body's end: an event a final lone CR completed (the rest is incomplete)."""
        if self.lines is None:
            return []
        found: list[bytes | str] = []
        for line in self.lines.flush():
            event = self.decoder.decode(line)
            if event is not None:
                found.append(event.data)
        return found

    def _decode_block(self, block: bytes) -> str | None:
        decode = self.decoder.decode
        for line in block.decode("utf-8", errors="replace").split("\n"):
            decode(line)
        event = decode("")
        return None if event is None else event.data

    def _feed_lines(self, chunk: bytes) -> list[bytes | str]:
        if self.lines is None:
            self.lines = SSELineDecoder()
            chunk, self.buffer = self.buffer + chunk, b""
        found: list[bytes | str] = []
        text = self.text.decode(chunk)
        if not text:
            return found
        for line in self.lines.decode(text):
            event = self.decoder.decode(line)
            if event is not None:
                found.append(event.data)
        return found
