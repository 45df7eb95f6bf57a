"""Deterministic tokenisation and the wire encoding of completions.

Streamed chunks are built from a per-response byte prefix (id, model, created) plus a
small per-token tail, so a token costs one `json.dumps` of a short string instead of
serialising a whole chunk dict: the server shares the CPU with the service it measures.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

DONE = b"data: [DONE]\n\n"

_TOKEN_RE = re.compile(r"\s*\S+|\s+")
_ARGUMENT_FRAGMENT_CHARS = 12
_OPEN_TAIL = b',"logprobs":null,"finish_reason":null}]}\n\n'


def tokenize(text: str) -> list[str]:
    """Split text into word tokens that keep their leading whitespace.

    `"".join(tokenize(t)) == t` always holds, so concatenated deltas reproduce the text.
    """
    return _TOKEN_RE.findall(text)


def numbered_tokens(count: int) -> list[str]:
    """The `--default-tokens` answer: "tok1", " tok2", ... " tokN" (N tokens)."""
    return [f"tok{i}" if i == 1 else f" tok{i}" for i in range(1, count + 1)]


def split_arguments(arguments: str) -> list[str]:
    """Cut tool-call argument text into fixed-size fragments, as models stream them."""
    step = _ARGUMENT_FRAGMENT_CHARS
    return [arguments[i : i + step] for i in range(0, len(arguments), step)]


# json.dumps() with options builds a new JSONEncoder per call; reuse one.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return _ENCODER.encode(value).encode()


@lru_cache(maxsize=4096)
def _content_delta(token: str) -> bytes:
    # Bounded cache: benchmark answers repeat the same few tokens on every call.
    return b'{"content":' + dumps(token) + b"}"


class ChunkEncoder:
    """Pre-encoded `chat.completion.chunk` SSE events of one streamed response."""

    __slots__ = ("_head", "_prefix")

    def __init__(self, completion_id: str, model: str, created: int) -> None:
        head = dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
            }
        )
        # The object without its closing brace: every chunk appends its own fields.
        self._head = b"data: " + head[:-1]
        self._prefix = self._head + b',"choices":[{"index":0,"delta":'

    def role(self) -> bytes:
        """The first chunk: `delta.role = "assistant"` and no content yet."""
        return self._prefix + b'{"role":"assistant"}' + _OPEN_TAIL

    def content(self, token: str) -> bytes:
        """One content token."""
        return self._prefix + _content_delta(token) + _OPEN_TAIL

    def tool_call_start(self, index: int, call_id: str, name: str) -> bytes:
        """Opens tool call `index`: id, type and name, with empty arguments."""
        call = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        return self._prefix + b'{"tool_calls":[' + dumps(call) + b"]}" + _OPEN_TAIL

    def tool_call_arguments(self, index: int, fragment: str) -> bytes:
        """A fragment of tool call `index`'s arguments."""
        return (
            self._prefix
            + b'{"tool_calls":[{"index":%d,"function":{"arguments":' % index
            + dumps(fragment)
            + b"}}]}"
            + _OPEN_TAIL
        )

    def finish(self, reason: str) -> bytes:
        """The last choice chunk: empty delta and the finish reason."""
        return self._prefix + b'{},"logprobs":null,"finish_reason":' + dumps(reason) + b"}]}\n\n"

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        """The `stream_options.include_usage` chunk: no choices, only usage."""
        usage = usage_dict(prompt_tokens, completion_tokens)
        return self._head + b',"choices":[],"usage":' + dumps(usage) + b"}\n\n"


def usage_dict(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI `usage` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(
    *,
    completion_id: str,
    model: str,
    created: int,
    text: str | None,
    tool_calls: list[dict[str, Any]],
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> bytes:
    """A non-streamed `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return dumps(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage_dict(prompt_tokens, completion_tokens),
        }
    )
