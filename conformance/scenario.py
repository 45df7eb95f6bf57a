"""The conformance scenario's engine in Python (shared by run_python.py and run_grpcurl.py).

The scenario (`scenario.json`, format described in README.md) is data: ordered steps, each a
unary RPC with a proto3-JSON request and an expectation, or a `Run` script of sends and
expected events over one or more named streams. A transport turns JSON requests into calls;
this module substitutes variables, matches results and prints one line per step.
The Go (client/go/conformance) and TypeScript (client/ts/conformance) runners implement
the same rules.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

SCENARIO = Path(__file__).resolve().parent / "scenario.json"
FORMAT = 1
_VAR = re.compile(r"\{\{([A-Za-z0-9_.]+)\}\}")


class StepFailed(Exception):
    """A step's outcome differs from its expectation."""


class StepSkipped(Exception):
    """The transport cannot run this step (reported as SKIP, not a failure)."""


@dataclass
class Status:
    """How a call or stream ended: a canonical code name and the ErrorInfo reason."""

    code: str
    reason: str = ""
    message: str = ""


@dataclass
class Unary:
    """The outcome of a unary call: its status and, when OK, the response as proto3 JSON."""

    status: Status
    body: dict[str, Any] = field(default_factory=dict)


class Stream(Protocol):
    """One `Run` stream of a script."""

    def send(self, message: dict[str, Any]) -> None: ...

    def half_close(self) -> None: ...

    def next(self, timeout: float) -> dict[str, Any] | Status:
        """The next event (proto3 JSON), or the final Status once the stream ended."""
        ...

    def close(self) -> None: ...


class Transport(Protocol):
    """How a runner reaches the server."""

    # False when a stream's input must be complete before its first event is read
    # (grpcurl): scripts that interleave sends and receives are skipped.
    interactive: bool

    def unary(
        self, rpc: str, request: dict[str, Any], metadata: Mapping[str, str], timeout: float
    ) -> Unary: ...

    def stream(self, rpc: str, metadata: Mapping[str, str], timeout: float) -> Stream: ...


def load(path: Path = SCENARIO) -> dict[str, Any]:
    """The scenario, checked for the format this engine implements."""
    scenario: dict[str, Any] = json.loads(path.read_text())
    if scenario.get("format") != FORMAT:
        raise SystemExit(f"{path}: format {scenario.get('format')!r}, this runner knows {FORMAT}")
    return scenario


def substitute(value: Any, variables: Mapping[str, str]) -> Any:
    """`value` with every `{{name}}` in its strings replaced (unknown names raise KeyError)."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: variables[m.group(1)], value)
    if isinstance(value, list):
        return [substitute(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, variables) for key, item in value.items()}
    return value


_ABSENT = object()


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted path (numeric segments index lists), or _ABSENT."""
    current = document
    for segment in path.split("."):
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return _ABSENT
    return current


def _is_zero(value: Any) -> bool:
    return value is _ABSENT or value is None or value in (False, 0, "", [], {})


def equal(actual: Any, expected: Any) -> bool:
    """proto3-JSON equality: absent equals the zero value; int64 strings equal numbers."""
    if actual is _ABSENT or actual is None:
        return _is_zero(expected)
    if expected is _ABSENT:
        return _is_zero(actual)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, int | float) and isinstance(actual, str):
        try:
            return float(actual) == float(expected)
        except ValueError:
            return False
    if isinstance(expected, dict) and isinstance(actual, dict):
        keys = set(expected) | set(actual)
        return all(equal(actual.get(k, _ABSENT), expected.get(k, _ABSENT)) for k in keys)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(actual) == len(expected) and all(map(equal, actual, expected))
    return bool(actual == expected)


def check(document: Any, fields: Mapping[str, Any]) -> None:
    """Match every `path: expectation` of `fields` against `document`."""
    for path, expected in fields.items():
        actual = lookup(document, path)
        shown = "<absent>" if actual is _ABSENT else json.dumps(actual)
        matcher = isinstance(expected, dict) and len(expected) == 1
        if matcher and next(iter(expected)).startswith("$"):
            op, arg = next(iter(expected.items()))
            if op == "$nonempty":
                ok = _is_zero(actual) != bool(arg)
            elif op == "$ne":
                ok = not equal(actual, arg)
            elif op == "$len":
                items = [] if actual is _ABSENT else actual
                ok = isinstance(items, list) and len(items) == arg
            else:
                raise StepFailed(f"unknown matcher {op}")
            if not ok:
                raise StepFailed(f"{path}: {shown} does not satisfy {json.dumps(expected)}")
        elif not equal(actual, expected):
            raise StepFailed(f"{path}: got {shown}, want {json.dumps(expected)}")


def capture(document: Any, wanted: Mapping[str, str], variables: dict[str, str]) -> None:
    """Store `name: path` values of `document` as variables for later steps."""
    for name, path in wanted.items():
        value = lookup(document, path)
        if value is _ABSENT:
            raise StepFailed(f"capture {name}: {path} is absent")
        variables[name] = value if isinstance(value, str) else json.dumps(value)


def check_status(got: Status, expect: Mapping[str, Any]) -> None:
    """Compare a status with `{"code": ..., "reason": ...}` (code defaults to OK)."""
    want_code = expect.get("code", "OK")
    want_reason = expect.get("reason", "")
    if got.code != want_code or (want_reason and got.reason != want_reason):
        want = want_code + (f"/{want_reason}" if want_reason else "")
        raise StepFailed(f"status {got.code}/{got.reason or '-'} ({got.message}), want {want}")


def event_kind(event: Mapping[str, Any], kinds: list[str]) -> str | None:
    """Which of `kinds` (RunEvent oneof JSON names) the event is."""
    return next((kind for kind in kinds if kind in event), None)


def batchable(script: list[dict[str, Any]]) -> bool:
    """True when a script uses one stream and sends everything before its first expectation."""
    streams = {action.get("stream", "main") for action in script}
    seen_expect = False
    for action in script:
        if "expect_event" in action or "expect_end" in action:
            seen_expect = True
        elif seen_expect:
            return False
    return len(streams) == 1


class Runner:
    """Runs a scenario's steps over a transport and prints `PASS name` / `FAIL name: why`."""

    def __init__(
        self,
        scenario: dict[str, Any],
        transport: Transport,
        prefix: str,
        out: Callable[[str], None],
    ) -> None:
        self.scenario = scenario
        self.transport = transport
        # The API key of the runner's tenant (empty against a server without authentication).
        token = os.environ.get("ORCHESTRATOR_TOKEN", "")
        self.variables: dict[str, str] = {"prefix": prefix, "token": token}
        self.skipped_vars: set[str] = set()
        self.timeout = float(scenario.get("timeout_seconds", 20))
        self.out = out

    @property
    def metadata(self) -> dict[str, str]:
        return dict(substitute(self.scenario.get("metadata", {}), self.variables))

    def run(self, only: set[str] | None = None) -> bool:
        """Run every step (or those named in `only`); True when none failed."""
        failed = 0
        for step in self.scenario["steps"]:
            name = step["name"]
            if only and name not in only:
                continue
            try:
                if "script" in step:
                    self._script(step)
                else:
                    self._unary(step)
            except StepSkipped as skip:
                self.skipped_vars |= _captures_of(step)
                self.out(f"SKIP {name}: {skip}")
            except StepFailed as failure:
                failed += 1
                self.out(f"FAIL {name}: {failure}")
            except KeyError as missing:
                if missing.args and missing.args[0] in self.skipped_vars:
                    self.skipped_vars |= _captures_of(step)
                    self.out(f"SKIP {name}: needs {{{{{missing.args[0]}}}}} of a skipped step")
                else:
                    failed += 1
                    self.out(f"FAIL {name}: unknown variable {missing}")
            else:
                self.out(f"PASS {name}")
        return failed == 0

    def _unary(self, step: dict[str, Any]) -> None:
        request = substitute(step.get("request", {}), self.variables)
        expect = step.get("expect", {})
        result = self.transport.unary(step["rpc"], request, self.metadata, self.timeout)
        check_status(result.status, expect)
        check(result.body, substitute(expect.get("fields", {}), self.variables))
        capture(result.body, expect.get("capture", {}), self.variables)

    def _script(self, step: dict[str, Any]) -> None:
        script: list[dict[str, Any]] = step["script"]
        if not self.transport.interactive and not batchable(script):
            raise StepSkipped("interleaves sends and receives or uses several streams")
        streams: dict[str, Stream] = {}
        texts: dict[str, str] = {}
        try:
            for index, action in enumerate(script):
                name = action.get("stream", "main")
                if name not in streams:
                    streams[name] = self.transport.stream(step["rpc"], self.metadata, self.timeout)
                    texts[name] = ""
                stream = streams[name]
                where = f"[{index}] {name}"
                if "send" in action:
                    message = substitute(action["send"], self.variables)
                    if "start" in message:
                        texts[name] = ""
                    stream.send(message)
                elif action.get("half_close"):
                    stream.half_close()
                elif "expect_event" in action:
                    texts[name] = self._expect_event(stream, action, texts[name], where)
                elif "expect_end" in action:
                    while True:
                        item = stream.next(self.timeout)
                        if isinstance(item, Status):
                            break
                        if "textDelta" in item:
                            texts[name] += str(lookup(item, "textDelta.text"))
                    try:
                        check_status(item, action["expect_end"])
                    except StepFailed as failure:
                        raise StepFailed(f"{where}: {failure}") from None
                else:
                    raise StepFailed(f"{where}: unknown action {sorted(action)}")
        finally:
            for stream in streams.values():
                stream.close()

    def _expect_event(self, stream: Stream, action: dict[str, Any], text: str, where: str) -> str:
        kind: str = action["expect_event"]
        forbid: list[str] = action.get("forbid", [])
        while True:
            item = stream.next(self.timeout)
            if isinstance(item, Status):
                raise StepFailed(
                    f"{where}: stream ended ({item.code}/{item.reason} "
                    f"{item.message}) before {kind}"
                )
            if "textDelta" in item:
                text += str(lookup(item, "textDelta.text"))
            bad = event_kind(item, forbid)
            if bad:
                raise StepFailed(f"{where}: got {bad} while waiting for {kind}")
            if kind in item:
                break
        local = {**self.variables, "text": text}
        try:
            if "text" in action and text != substitute(action["text"], local):
                raise StepFailed(f"text {text!r}, want {substitute(action['text'], local)!r}")
            check(item, substitute(action.get("fields", {}), local))
            capture(item, action.get("capture", {}), self.variables)
        except StepFailed as failure:
            raise StepFailed(f"{where} {kind}: {failure}") from None
        return text


def _captures_of(step: dict[str, Any]) -> set[str]:
    names = set(step.get("expect", {}).get("capture", {}))
    for action in step.get("script", []):
        names |= set(action.get("capture", {}))
    return names


def emit(line: str) -> None:
    """Print one result line at once (runners are read line by line by the harness)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
