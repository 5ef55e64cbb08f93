"""Wire formats: each module turns a turn's typed events into the bytes of one protocol."""
