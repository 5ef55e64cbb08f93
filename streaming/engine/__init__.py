"""The turn engine: one turn of a conversation as an async iterator of typed events.

It knows no HTTP and no wire format; ``streaming.protocols`` turns its events into bytes.
"""
