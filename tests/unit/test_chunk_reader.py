"""The model adapter's reading of a provider's stream does not trust its numbers: counts
that would overflow become bounded ints, never an exception (which would be INTERNAL)."""

from __future__ import annotations

import json

from orchestrator_server.models.openai_chat import _ChunkReader


def line(chunk: object) -> str:
    return "data: " + json.dumps(chunk)


def test_absurd_counts_from_a_provider_are_bounded() -> None:
    reader = _ChunkReader("p")
    usage = {"prompt_tokens": 1e999, "completion_tokens": -5}
    reader.text_of(line({"choices": [], "usage": usage}).replace("Infinity", "1e999"))
    assert (reader.usage.prompt_tokens, reader.usage.completion_tokens) == (2**31 - 1, 0)
    call = {"index": 1e300, "id": "c", "function": {"name": "f", "arguments": "{}"}}
    reader.text_of(line({"choices": [{"delta": {"tool_calls": [call]}, "finish_reason": "x"}]}))
    (assembled,) = reader.end().tool_calls
    assert (assembled.call_id, assembled.name) == ("c", "f")
