"""The script of the development model server: rules that pick a reply for a request.

A rule is `{"match": {...}, "reply": {...}, "times": N, "name": "..."}`; the first matching,
non-exhausted rule wins. Rules are validated strictly (unknown keys are errors) because a
typo such as `"contain"` would otherwise silently match every request.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .request import ChatRequest

_RULE_KEYS = frozenset({"match", "reply", "times", "name"})
_MATCH_KEYS = frozenset({"model", "contains", "system_contains", "last_role", "has_tools"})
_REPLY_KEYS = frozenset(
    {
        "text",
        "tool_calls",
        "error",
        "latency_ms",
        "tokens_per_second",
        "stall",
        "cut_after_tokens",
        "echo_tool_results",
    }
)
_TOOL_CALL_KEYS = frozenset({"name", "arguments", "id"})
_ERROR_KEYS = frozenset({"status", "message", "code", "type", "retry_after", "should_retry"})


class RuleError(ValueError):
    """A rule that does not follow the schema."""


@dataclass(frozen=True, slots=True)
class Match:
    """Conditions on a request; all the set ones must hold."""

    model: str | None = None
    contains: str | None = None
    system_contains: str | None = None
    last_role: str | None = None
    has_tools: bool | None = None

    def matches(self, request: ChatRequest) -> bool:
        """Whether `request` satisfies every condition that is set."""
        return (
            (self.model is None or request.model == self.model)
            and (self.contains is None or self.contains in request.last_user)
            and (self.system_contains is None or self.system_contains in request.system)
            and (self.last_role is None or request.last_role == self.last_role)
            and (self.has_tools is None or request.has_tools == self.has_tools)
        )


@dataclass(frozen=True, slots=True)
class ToolCallSpec:
    """A tool call to emit; `arguments` is already the JSON text the client will receive."""

    name: str
    arguments: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """An HTTP error to answer instead of a completion."""

    status: int
    message: str
    code: str | None = None
    type: str | None = None
    retry_after: float | None = None
    should_retry: bool | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer and how (pace, faults). Unset fields fall back to server defaults."""

    text: str | None = None
    tool_calls: tuple[ToolCallSpec, ...] = ()
    error: ErrorSpec | None = None
    latency_ms: float | None = None
    tokens_per_second: float | None = None
    stall: bool = False
    cut_after_tokens: int | None = None
    echo_tool_results: bool = False


@dataclass(slots=True)
class Rule:
    """A parsed rule plus its use count (the `times` budget is spent on selection)."""

    match: Match
    reply: Reply
    times: int | None
    name: str | None
    source: dict[str, Any]
    hits: int = 0

    @property
    def exhausted(self) -> bool:
        """True once the rule has answered its `times` requests."""
        return self.times is not None and self.hits >= self.times

    def describe(self) -> dict[str, Any]:
        """The rule as given, with its hit count, for `GET /_dev/rules`."""
        return {**self.source, "hits": self.hits, "exhausted": self.exhausted}


class RuleBook:
    """The ordered rule list. Not locked: it is only used from the server's event loop."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._rules: list[Rule] = list(rules)

    def replace(self, rules: Iterable[Rule]) -> None:
        """Replace the whole script."""
        self._rules = list(rules)

    def extend(self, rules: Iterable[Rule]) -> None:
        """Append rules after the existing ones (lower priority)."""
        self._rules.extend(rules)

    def clear(self) -> None:
        """Remove every rule: all requests get the default reply."""
        self._rules = []

    def select(self, request: ChatRequest) -> Rule | None:
        """The first non-exhausted rule matching `request`, its budget spent; None if none."""
        for rule in self._rules:
            if not rule.exhausted and rule.match.matches(request):
                rule.hits += 1
                return rule
        return None

    def describe(self) -> list[dict[str, Any]]:
        """Every rule as given, with hit counts."""
        return [rule.describe() for rule in self._rules]


def parse_rules(raw: Any) -> list[Rule]:
    """Parse a JSON list of rules; raise `RuleError` naming the first offending rule."""
    if not isinstance(raw, list):
        raise RuleError("'rules' must be a list")
    return [parse_rule(item, index) for index, item in enumerate(raw)]


def parse_rule(raw: Any, index: int = 0) -> Rule:
    """Parse one rule (see the module docstring for the schema)."""
    where = f"rules[{index}]"
    obj = _object(raw, where, _RULE_KEYS)
    times = obj.get("times")
    if times is not None and (not _is_int(times) or times < 0):
        raise RuleError(f"{where}.times must be a non-negative integer")
    name = obj.get("name")
    if name is not None and not isinstance(name, str):
        raise RuleError(f"{where}.name must be a string")
    match_obj = _object(obj.get("match", {}), f"{where}.match", _MATCH_KEYS)
    match = Match(
        model=_opt_str(match_obj, "model", where),
        contains=_opt_str(match_obj, "contains", where),
        system_contains=_opt_str(match_obj, "system_contains", where),
        last_role=_opt_str(match_obj, "last_role", where),
        has_tools=_opt_bool(match_obj, "has_tools", where),
    )
    return Rule(
        match=match,
        reply=_parse_reply(obj.get("reply", {}), f"{where}.reply"),
        times=times,
        name=name,
        source=obj,
    )


def _parse_reply(raw: Any, where: str) -> Reply:
    obj = _object(raw, where, _REPLY_KEYS)
    cut = obj.get("cut_after_tokens")
    if cut is not None and (not _is_int(cut) or cut < 0):
        raise RuleError(f"{where}.cut_after_tokens must be a non-negative integer")
    error = obj.get("error")
    calls = obj.get("tool_calls", [])
    if not isinstance(calls, list):
        raise RuleError(f"{where}.tool_calls must be a list")
    return Reply(
        text=_opt_str(obj, "text", where),
        tool_calls=tuple(
            _parse_tool_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(calls)
        ),
        error=None if error is None else _parse_error(error, f"{where}.error"),
        latency_ms=_opt_number(obj, "latency_ms", where),
        tokens_per_second=_opt_number(obj, "tokens_per_second", where),
        stall=_opt_bool(obj, "stall", where) or False,
        cut_after_tokens=cut,
        echo_tool_results=_opt_bool(obj, "echo_tool_results", where) or False,
    )


def _parse_tool_call(raw: Any, where: str) -> ToolCallSpec:
    obj = _object(raw, where, _TOOL_CALL_KEYS)
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise RuleError(f"{where}.name must be a non-empty string")
    arguments = obj.get("arguments", {})
    if not isinstance(arguments, str):
        # Objects are serialised the way OpenAI models emit them (compact-ish JSON text).
        arguments = json.dumps(arguments, ensure_ascii=False)
    return ToolCallSpec(name=name, arguments=arguments, id=_opt_str(obj, "id", where))


def _parse_error(raw: Any, where: str) -> ErrorSpec:
    obj = _object(raw, where, _ERROR_KEYS)
    status = obj.get("status", 500)
    if not _is_int(status) or not 400 <= status <= 599:
        raise RuleError(f"{where}.status must be an HTTP error status (400-599)")
    message = _opt_str(obj, "message", where) or f"Injected error {status} from devmodel"
    return ErrorSpec(
        status=status,
        message=message,
        code=_opt_str(obj, "code", where),
        type=_opt_str(obj, "type", where),
        retry_after=_opt_number(obj, "retry_after", where),
        should_retry=_opt_bool(obj, "should_retry", where),
    )


def _object(raw: Any, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RuleError(f"{where} must be an object")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return raw


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _opt_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise RuleError(f"{where}.{key} must be a string")
    return value


def _opt_bool(obj: dict[str, Any], key: str, where: str) -> bool | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise RuleError(f"{where}.{key} must be a boolean")
    return value


def _opt_number(obj: dict[str, Any], key: str, where: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RuleError(f"{where}.{key} must be a finite number")
    if value < 0:
        raise RuleError(f"{where}.{key} must be >= 0")
    return float(value)
