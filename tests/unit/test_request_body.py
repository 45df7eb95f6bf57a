"""The chat request body is the JSON of its parameters and messages, and a large one is
encoded in steps that let the event loop run other callbacks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from helpers import other_callbacks
from orchestrator_server.models.request_body import STEP_BYTES, encode_chat_body

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": 'Be brief. «quoted» \u2028 "escaped" \\ \n'},
    {"role": "user", "content": "2+2? 🧮"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "calc", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "4"},
    {"role": "user", "content": "a lone surrogate \ud800 is escaped, not an encoding error"},
]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"model": "m", "stream": True, "temperature": 0.5, "stop": ["\n"]},
        {"model": "m", "tools": [{"type": "function", "function": {"name": "calc"}}]},
    ],
)
@pytest.mark.parametrize("messages", [[], MESSAGES])
async def test_the_body_is_the_parameters_with_the_messages(
    params: dict[str, Any], messages: list[dict[str, Any]]
) -> None:
    body = await encode_chat_body(params, messages)
    assert json.loads(body) == {**params, "messages": messages}


async def test_a_large_body_gives_the_loop_back_while_it_is_encoded() -> None:
    messages = [{"role": "user", "content": "x" * STEP_BYTES} for _ in range(8)]
    async with other_callbacks() as ticks:
        body = await encode_chat_body({"model": "m"}, messages)
    assert json.loads(body)["messages"] == messages
    # One step per message of STEP_BYTES: the other task ran between them.
    assert ticks[0] >= len(messages) - 1


@pytest.mark.parametrize(
    "messages",
    [
        # Small in all: one call.
        MESSAGES * 10,
        # Just past the one-call size, in medium messages and in tool-call arguments.
        [{"role": "user", "content": "é" * (STEP_BYTES // 64)}] * 9,
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c",
                        "type": "function",
                        "function": {"name": "f", "arguments": "x" * (STEP_BYTES // 8)},
                    }
                ],
            }
        ],
        # Parts (text and images): encoded message by message.
        [{"role": "user", "content": [{"type": "text", "text": "hi \ud800"}]}, *MESSAGES],
    ],
)
async def test_every_size_and_shape_encodes_the_same(messages: list[dict[str, Any]]) -> None:
    body = await encode_chat_body({"model": "m"}, messages)
    assert json.loads(body) == {"model": "m", "messages": messages}
