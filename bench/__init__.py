"""Benchmarks of the relay: ``uv run python -m bench`` (see docs/benchmarks.md)."""
