"""The development LLM: a deterministic, scriptable stand-in for an OpenAI-compatible server.

It is NOT a language model. It exists for the demo, the tests and the benchmarks: replies are
deterministic, pace and length are configurable, and tests script exact replies, tool calls
and faults through its ``/__dev__/`` control endpoints. See ``devllm/app.py``.
"""
