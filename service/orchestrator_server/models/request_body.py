"""The JSON body of a chat completion request, encoded without stalling the event loop.

`json.dumps` runs in C holding the GIL: a history of large turns (ten 1 MB messages)
takes ~60 ms in one call, which no thread can interleave with. Encoded one message at a
time, with the loop given back every STEP_BYTES, the longest hold is one message's
worth (~5 ms per MB), and a small body still costs one call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

STEP_BYTES = 256 * 1024
# One encoder for every call: json.dumps with options builds a new one each time.
_UTF8 = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII = json.JSONEncoder(separators=(",", ":"))


def _dumps(value: object) -> bytes:
    text = _UTF8.encode(value)
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate: escaped as \udXXX, which JSON allows
        return _ASCII.encode(value).encode()


def _text_size(message: Any) -> int:
    """The characters of a message's text and tool calls; a message of another shape
    (parts, images) counts as a whole step, so that it is encoded on its own."""
    if not isinstance(message, dict):
        return STEP_BYTES
    content = message.get("content")
    size = len(content) if isinstance(content, str) else 0 if content is None else STEP_BYTES
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        size += len(function.get("name") or "") + len(function.get("arguments") or "")
    return size


async def encode_chat_body(params: dict[str, Any], messages: Sequence[Any]) -> bytes:
    """`params` with `"messages": messages`, as UTF-8 JSON bytes."""
    if sum(_text_size(m) for m in messages) < STEP_BYTES // 8:
        # Small (the usual turn): one call; escaping at most sextuples the characters.
        return _dumps({**params, "messages": messages})
    head = _dumps(params)  # params are small: the model, parameters and tool declarations
    pieces = [head[:-1] + (b',"messages":[' if head != b"{}" else b'"messages":[')]
    since_yield = 0
    for index, message in enumerate(messages):
        part = _dumps(message)
        if index:
            pieces.append(b",")
        pieces.append(part)
        since_yield += len(part)
        if since_yield >= STEP_BYTES:
            since_yield = 0
            await asyncio.sleep(0)
    pieces.append(b"]}")
    return b"".join(pieces)  # one copy of the whole body
