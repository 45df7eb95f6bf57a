"""Unit tests of the dev model server's pure parts: tokenisation, rules, config."""

from __future__ import annotations

import pytest

from orchestrator_devmodel.config import DevModelConfig, config_from_args
from orchestrator_devmodel.encoding import numbered_tokens, split_arguments, tokenize
from orchestrator_devmodel.request import ApiError, ChatRequest
from orchestrator_devmodel.rules import RuleBook, RuleError, parse_rules


@pytest.mark.parametrize(
    "text", ["", " ", "Echo: hi", "  lead and trail  ", "a\n\nb\tc", "unicode é ✓ 字"]
)
def test_tokenize_round_trips(text: str) -> None:
    assert "".join(tokenize(text)) == text
    assert tokenize(text) == tokenize(text)


def test_numbered_tokens_and_argument_fragments() -> None:
    assert numbered_tokens(3) == ["tok1", " tok2", " tok3"]
    args = '{"city": "Paris", "unit": "C"}'
    assert "".join(split_arguments(args)) == args
    assert len(split_arguments(args)) > 1


def request(**body: object) -> ChatRequest:
    return ChatRequest.parse({"model": "m", **body})


def test_request_views() -> None:
    req = request(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "part one"}]},
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "tool_call_id": "a", "content": "r1"},
            {"role": "tool", "tool_call_id": "b", "content": "r2"},
        ],
        tools=[{"type": "function", "function": {"name": "f"}}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert (req.last_user, req.system, req.last_role) == ("part one", "be brief", "tool")
    assert req.trailing_tool_results == ("r1", "r2")
    assert (req.has_tools, req.stream, req.include_usage) == (True, True, True)
    assert req.prompt_tokens == 6


@pytest.mark.parametrize(
    "body", [[], {"messages": [{"role": "user"}]}, {"model": "m"}, {"model": "m", "messages": [1]}]
)
def test_request_validation(body: object) -> None:
    with pytest.raises(ApiError) as info:
        ChatRequest.parse(body)
    assert info.value.status == 400


def test_rulebook_first_match_and_times() -> None:
    book = RuleBook(
        parse_rules(
            [
                {"name": "once", "match": {"contains": "x"}, "reply": {"text": "1"}, "times": 1},
                {"name": "tools", "match": {"has_tools": True}, "reply": {"text": "2"}},
                {"name": "any", "reply": {"text": "3"}},
            ]
        )
    )
    plain = request(messages=[{"role": "user", "content": "x"}])
    names = [getattr(book.select(plain), "name", None) for _ in range(2)]
    assert names == ["once", "any"]
    with_tools = request(messages=[{"role": "user", "content": "x"}], tools=[{"type": "function"}])
    assert getattr(book.select(with_tools), "name", None) == "tools"
    assert [r["hits"] for r in book.describe()] == [1, 1, 1]


@pytest.mark.parametrize(
    "rule",
    [
        {"match": {"contain": "x"}},
        {"reply": {"txt": "x"}},
        {"times": -1},
        {"reply": {"error": {"status": 200}}},
        {"reply": {"latency_ms": "slow"}},
        {"reply": {"tool_calls": [{"arguments": {}}]}},
        {"reply": {"stall": "yes"}},
        "not an object",
    ],
)
def test_invalid_rules(rule: object) -> None:
    with pytest.raises(RuleError):
        parse_rules([rule])


def test_cli_flags_round_trip() -> None:
    config = config_from_args(
        [
            "--port",
            "0",
            "--api-key",
            "k",
            "--latency-ms",
            "5",
            "--tokens-per-second",
            "100",
            "--default-tokens",
            "20",
            "--models",
            "a, b",
            "--no-record",
        ]
    )
    assert config == DevModelConfig(
        api_key="k",
        latency_ms=5,
        tokens_per_second=100,
        default_tokens=20,
        models=("a", "b"),
        record=False,
    )
    assert config_from_args(config.to_argv()) == config
