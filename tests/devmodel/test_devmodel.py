"""End-to-end tests of the dev model server through the real `openai.AsyncOpenAI` client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from orchestrator_devmodel import (
    LISTENING_PREFIX,
    DevModelAdmin,
    DevModelConfig,
    DevModelProcess,
    DevModelServer,
)

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello  there world"}]


@pytest.fixture
async def server() -> AsyncIterator[DevModelServer]:
    async with DevModelServer(DevModelConfig()) as srv:
        yield srv


@pytest.fixture
async def admin(server: DevModelServer) -> AsyncIterator[DevModelAdmin]:
    async with DevModelAdmin(server.base_url) as adm:
        yield adm


@pytest.fixture
async def client(server: DevModelServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0) as cli:
        yield cli


async def collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


def contents(chunks: list[Any]) -> list[str]:
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


async def test_stream_default_echo_with_usage(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="any-model",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = await collect(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    tokens = contents(chunks)
    assert "".join(tokens) == "Echo: hello  there world"
    assert tokens == ["Echo:", " hello", "  there", " world"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3, 4, 7)
    assert chunks[0].model == "any-model"


async def test_non_streamed_default_echo(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="m", messages=USER)
    assert completion.choices[0].message.content == "Echo: hello  there world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4


async def test_same_request_same_chunks(client: AsyncOpenAI) -> None:
    runs = []
    for _ in range(2):
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        runs.append(contents(await collect(stream)))
    assert runs[0] == runs[1]


async def test_default_tokens_gives_exactly_n_chunks() -> None:
    async with (
        DevModelServer(DevModelConfig(default_tokens=20)) as srv,
        AsyncOpenAI(base_url=srv.base_url, api_key="k", max_retries=0) as cli,
    ):
        stream = await cli.chat.completions.create(model="m", messages=USER, stream=True)
        tokens = contents(await collect(stream))
    assert len(tokens) == 20
    assert "".join(tokens) == " ".join(f"tok{i}" for i in range(1, 21))


async def test_rules_match_contains_and_last_role(
    client: AsyncOpenAI, admin: DevModelAdmin
) -> None:
    await admin.set_rules(
        [
            {"name": "after-tool", "match": {"last_role": "tool"}, "reply": {"text": "final"}},
            {"match": {"contains": "weather"}, "reply": {"text": "Sunny in {last_user}!"}},
            {"match": {"system_contains": "pirate"}, "reply": {"text": "Arr"}},
        ]
    )
    got = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "weather Paris"}]
    )
    assert got.choices[0].message.content == "Sunny in weather Paris!"
    got = await client.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "hi"},
        ],
    )
    assert got.choices[0].message.content == "Arr"
    got = await client.chat.completions.create(
        model="m",
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "20C"},
        ],
    )
    assert got.choices[0].message.content == "final"
    described = await admin.rules()
    assert [r["hits"] for r in described] == [1, 1, 1]


async def test_times_exhausts_rule(client: AsyncOpenAI, admin: DevModelAdmin) -> None:
    await admin.set_rules([{"match": {}, "reply": {"text": "scripted"}, "times": 2}])
    answers = [
        (await client.chat.completions.create(model="m", messages=USER)).choices[0].message.content
        for _ in range(3)
    ]
    assert answers == ["scripted", "scripted", "Echo: hello  there world"]
    assert (await admin.rules())[0]["exhausted"] is True


async def test_parallel_tool_calls_streamed(client: AsyncOpenAI, admin: DevModelAdmin) -> None:
    await admin.set_rules(
        [
            {
                "match": {"has_tools": True},
                "reply": {
                    "tool_calls": [
                        {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}},
                        {"name": "get_time", "arguments": '{"tz": "Europe/Paris"}', "id": "t2"},
                    ]
                },
            }
        ]
    )
    tools: Any = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("get_weather", "get_time")
    ]
    stream = await client.chat.completions.create(
        model="m", messages=USER, tools=tools, stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    argument_chunks = 0
    finish = None
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                call["id"] = delta.id
            if delta.function and delta.function.name:
                call["name"] = delta.function.name
            if delta.function and delta.function.arguments:
                call["arguments"] += delta.function.arguments
                argument_chunks += 1
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris", "unit": "C"}
    assert json.loads(calls[1]["arguments"]) == {"tz": "Europe/Paris"}
    assert calls[1]["id"] == "t2"
    assert calls[0]["id"].startswith("call_")
    assert argument_chunks > 2  # arguments really arrive in fragments

    completion = await client.chat.completions.create(model="m", messages=USER, tools=tools)
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert [c.function.name for c in message.tool_calls if c.type == "function"] == [
        "get_weather",
        "get_time",
    ]
    assert (
        json.loads(message.tool_calls[0].model_dump()["function"]["arguments"])["city"] == "Paris"
    )


async def test_echo_tool_results(client: AsyncOpenAI, admin: DevModelAdmin) -> None:
    await admin.set_rules([{"match": {"last_role": "tool"}, "reply": {"echo_tool_results": True}}])
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        for i in (1, 2)
    ]
    messages: Any = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "result one"},
        {"role": "tool", "tool_call_id": "c2", "content": "result two"},
    ]
    stream = await client.chat.completions.create(model="m", messages=messages, stream=True)
    assert "".join(contents(await collect(stream))) == "result one\nresult two"


async def test_429_retry_after_then_success(server: DevModelServer, admin: DevModelAdmin) -> None:
    await admin.set_rules(
        [{"match": {}, "times": 1, "reply": {"error": {"status": 429, "retry_after": 0.3}}}]
    )
    async with AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=2) as cli:
        completion = await cli.chat.completions.create(model="m", messages=USER)
    assert completion.choices[0].message.content == "Echo: hello  there world"
    first, second = await admin.requests()
    assert second["received_at"] - first["received_at"] >= 0.28
    assert [e["outcome"] for e in await admin.events()] == ["error", "completed"]


async def test_persistent_500(client: AsyncOpenAI, admin: DevModelAdmin) -> None:
    await admin.set_rules(
        [{"match": {}, "reply": {"error": {"status": 500, "message": "boom", "code": "oops"}}}]
    )
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="m", messages=USER, stream=True)
    assert info.value.status_code == 500
    assert info.value.code == "oops"
    assert "boom" in info.value.message


async def test_api_key_required() -> None:
    async with DevModelServer(DevModelConfig(api_key="secret")) as srv:
        async with AsyncOpenAI(base_url=srv.base_url, api_key="wrong", max_retries=0) as cli:
            with pytest.raises(openai.AuthenticationError) as info:
                await cli.chat.completions.create(model="m", messages=USER)
            assert info.value.code == "invalid_api_key"
        async with AsyncOpenAI(base_url=srv.base_url, api_key="secret", max_retries=0) as cli:
            ok = await cli.chat.completions.create(model="m", messages=USER)
            assert ok.choices[0].message.content
        async with DevModelAdmin(srv.base_url) as adm:
            assert await adm.health()  # the admin API is not behind the key


async def test_unknown_model_when_restricted() -> None:
    config = DevModelConfig(models=("alpha", "beta"))
    async with (
        DevModelServer(config) as srv,
        AsyncOpenAI(base_url=srv.base_url, api_key="k", max_retries=0) as cli,
    ):
        assert sorted([m.id async for m in cli.models.list()]) == ["alpha", "beta"]
        with pytest.raises(openai.NotFoundError) as info:
            await cli.chat.completions.create(model="gamma", messages=USER)
        assert info.value.code == "model_not_found"
        ok = await cli.chat.completions.create(model="beta", messages=USER)
        assert ok.model == "beta"


async def test_bad_requests(server: DevModelServer, client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="m", messages=[])
    async with httpx2.AsyncClient(base_url=server.base_url, trust_env=False) as raw:
        response = await raw.post("/chat/completions", content=b"{not json")
        assert response.status_code == 400
        assert set(response.json()["error"]) >= {"message", "type", "code"}
        response = await raw.post("/chat/completions", json={"messages": USER})
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "model"


async def test_invalid_rule_rejected(admin: DevModelAdmin) -> None:
    with pytest.raises(httpx2.HTTPStatusError) as info:
        await admin.set_rules([{"match": {"contain": "typo"}, "reply": {}}])
    assert info.value.response.status_code == 400
    assert "contain" in info.value.response.json()["error"]["message"]


@pytest.mark.parametrize("paced", [False, True])
async def test_cut_after_tokens(client: AsyncOpenAI, admin: DevModelAdmin, paced: bool) -> None:
    reply: dict[str, Any] = {"text": "one two three four five", "cut_after_tokens": 2}
    if paced:
        reply["tokens_per_second"] = 200
    await admin.set_rules([{"match": {}, "reply": reply}])
    received: list[str] = []
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)

    async def consume() -> None:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)

    with pytest.raises(openai.APIConnectionError) as info:
        await consume()
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
    assert received == ["one", " two"]
    (event,) = await admin.events()
    assert (event["outcome"], event["chunks_sent"]) == ("cut", 2)


async def test_cut_non_streamed(client: AsyncOpenAI, admin: DevModelAdmin) -> None:
    await admin.set_rules([{"match": {}, "reply": {"cut_after_tokens": 0}}])
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="m", messages=USER)
    assert [e["outcome"] for e in await admin.events()] == ["cut"]


@pytest.mark.parametrize("how", ["cancel_task", "close_stream"])
async def test_stall_then_client_disconnect_is_seen_fast(
    client: AsyncOpenAI, admin: DevModelAdmin, how: str
) -> None:
    await admin.set_rules([{"name": "stall", "match": {}, "reply": {"stall": True}}])
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    first = await stream.__anext__()  # the role chunk; then the server stalls
    assert first.choices[0].delta.role == "assistant"
    if how == "cancel_task":
        task = asyncio.create_task(collect(stream))
        await asyncio.sleep(0)  # let it block on the stalled socket
        cancelled_at = time.time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        cancelled_at = time.time()
        await stream.close()
    (event,) = await admin.events(outcome="client_disconnected", wait=2.0)
    assert event["rule"] == "stall"
    assert 0 <= event["finished_at"] - cancelled_at < 0.1


async def test_disconnect_while_paced(client: AsyncOpenAI, admin: DevModelAdmin) -> None:
    await admin.set_rules([{"match": {}, "reply": {"text": "a " * 100, "tokens_per_second": 20}}])
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    closed_at = time.time()
    await stream.close()
    (event,) = await admin.events(outcome="client_disconnected", wait=2.0)
    assert 0 <= event["finished_at"] - closed_at < 0.1
    assert event["chunks_sent"] < 5


async def test_latency_and_pace_lower_bounds(client: AsyncOpenAI, admin: DevModelAdmin) -> None:
    await admin.set_rules(
        [{"match": {}, "reply": {"text": "a b c d e", "latency_ms": 200, "tokens_per_second": 50}}]
    )
    started = time.monotonic()
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    first_content_at = None
    async for chunk in stream:
        if first_content_at is None and chunk.choices and chunk.choices[0].delta.content:
            first_content_at = time.monotonic()
    ended = time.monotonic()
    assert first_content_at is not None
    assert first_content_at - started >= 0.2
    assert ended - started >= 0.2 + 5 / 50 - 0.01


async def test_no_record_keeps_nothing_but_counts() -> None:
    async with (
        DevModelServer(DevModelConfig(record=False)) as srv,
        AsyncOpenAI(base_url=srv.base_url, api_key="k", max_retries=0) as cli,
        DevModelAdmin(srv.base_url) as adm,
    ):
        await cli.chat.completions.create(model="m", messages=USER)
        assert await adm.requests() == []
        assert await adm.events() == []
        stats = await adm.stats()
        assert stats["requests_total"] == 1
        assert stats["outcomes"]["completed"] == 1


async def test_subprocess_prints_listening_line_and_serves() -> None:
    ping_rule = {"match": {"contains": "ping"}, "reply": {"text": "pong"}}
    process = DevModelProcess(DevModelConfig(default_tokens=3, rules=(ping_rule,)))
    assert process.argv()[1:3] == ["-m", "orchestrator_devmodel"]
    url = await process.astart()
    try:
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1")
        async with AsyncOpenAI(base_url=url, api_key="k", max_retries=0) as cli:
            stream = await cli.chat.completions.create(model="m", messages=USER, stream=True)
            assert contents(await collect(stream)) == ["tok1", " tok2", " tok3"]
            pong = await cli.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "ping"}]
            )
            assert pong.choices[0].message.content == "pong"
    finally:
        assert await process.astop() == 0
    assert LISTENING_PREFIX.strip() == "DEVMODEL_LISTENING"
