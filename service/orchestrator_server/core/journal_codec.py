"""The stored form of a run's events: a chunk of consecutive events of one run, as JSON.

A chunk holds the run's agent and parent once and each event as a short list (sequence,
kind, fields), so a flush of a run's events is one `json.dumps` of plain lists (~1 µs an
event) instead of a message per event; an event of a child run its stream carried is
`["@", run_id, agent_id, parent_run_id, sequence, kind, fields...]`. Text that UTF-8
cannot encode (a lone surrogate from a model) is kept as JSON escapes. A chunk may also
mark the run's end:
"ok" (its last event was its last), or the reason and message of its failure, which a
follower is given as the run's error. The format is the journal's own (the core's
events, not the API's messages); `decode_chunk` reads every version ever written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import events as ev
from .errors import OrchestratorError, error_for_reason
from .types import Message, Role, RunStatus, ToolCall, Usage

FORMAT = 1


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How a run ended, as its journal records it: `reason` is empty for a run whose
    events end the stream themselves (RunCompleted, RunCancelled)."""

    reason: str = ""
    message: str = ""

    def error(self) -> OrchestratorError | None:
        """The error a follower's stream ends with (None: a plain end)."""
        return error_for_reason(self.reason, self.message) if self.reason else None


def _message(message: Message) -> list[Any]:
    calls = [[c.call_id, c.name, c.arguments_json] for c in message.tool_calls]
    return [
        message.role.value,
        message.content,
        calls,
        message.tool_call_id,
        message.run_id,
        message.sequence,
        message.create_time,
    ]


def _message_from(fields: list[Any]) -> Message:
    role, content, calls, tool_call_id, run_id, sequence, create_time = fields
    return Message(
        Role(role),
        content,
        tuple(ToolCall(*c) for c in calls),
        tool_call_id,
        run_id,
        sequence,
        create_time,
    )


def _body(body: ev.EventBody) -> list[Any]:
    """The event's kind letter and fields."""
    if isinstance(body, ev.TextDelta):
        return ["d", body.text]
    if isinstance(body, ev.RunStarted):
        return ["s", body.session_id, body.status.value, body.replayed]
    if isinstance(body, ev.MessageCompleted):
        return ["m", _message(body.message)]
    if isinstance(body, ev.RunCompleted):
        usage = body.usage
        return [
            "c",
            body.output,
            usage.prompt_tokens,
            usage.completion_tokens,
            body.time_to_first_delta_ms,
            body.duration_ms,
        ]
    if isinstance(body, ev.RunCancelled):
        return ["x", body.reason, body.message]
    if isinstance(body, ev.ToolCallStarted):
        call = body.call
        return ["t", [call.call_id, call.name, call.arguments_json], body.location]
    return ["f", body.call_id, body.name, body.output, body.error, body.duration_ms]


def _body_from(kind: str, fields: list[Any]) -> ev.EventBody:
    if kind == "d":
        return ev.TextDelta(fields[0])
    if kind == "s":
        return ev.RunStarted(fields[0], RunStatus(fields[1]), fields[2])
    if kind == "m":
        return ev.MessageCompleted(_message_from(fields[0]))
    if kind == "c":
        # Fields a later version may append are ignored.
        output, prompt, completion, first, duration, *_ = fields
        return ev.RunCompleted(output, Usage(prompt, completion), first, duration)
    if kind == "x":
        return ev.RunCancelled(fields[0], fields[1])
    if kind == "t":
        return ev.ToolCallStarted(ToolCall(*fields[0]), fields[1])
    if kind == "f":
        return ev.ToolCallFinished(*fields)
    raise ValueError(f"unknown journal event kind {kind!r}")


def _item(run_id: str, event: ev.RunEvent) -> list[Any]:
    if event.run_id == run_id:
        return [event.sequence, *_body(event.body)]
    child = [event.run_id, event.agent_id, event.parent_run_id, event.sequence]
    return ["@", *child, *_body(event.body)]


def _items(run_id: str, events: Sequence[ev.RunEvent]) -> list[list[Any]]:
    """The chunk's events; a run's final output, the same text as the message completed
    just before it, is stored once (null in RunCompleted)."""
    items = []
    answer: str | None = None
    for event in events:
        item = _item(run_id, event)
        own = event.run_id == run_id
        if own and isinstance(event.body, ev.MessageCompleted):
            answer = event.body.message.content
        elif own and isinstance(event.body, ev.RunCompleted) and event.body.output == answer:
            item[2] = None
        items.append(item)
    return items


def encode_chunk(
    run: tuple[str, str, str], events: Sequence[ev.RunEvent], end: RunEnd | None
) -> bytes:
    """Consecutive events carried by one run's stream (run: its id, agent and parent;
    possibly no event, with an end) as one chunk."""
    run_id, agent_id, parent_run_id = run
    document: dict[str, Any] = {
        "v": FORMAT,
        "a": agent_id,
        "p": parent_run_id,
        "e": _items(run_id, events),
    }
    if end is not None:
        document["end"] = [end.reason, end.message]
    # Model calls of the runs that completed in the chunk, by run id: a key of the chunk
    # rather than a sixth field of "c", which servers of the previous version (during a
    # rolling upgrade) could not unpack; they ignore keys they do not know.
    calls = {
        e.run_id: e.body.usage.model_calls
        for e in events
        if isinstance(e.body, ev.RunCompleted) and e.body.usage.model_calls
    }
    if calls:
        document["mc"] = calls
    try:
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(document, separators=(",", ":")).encode()


def decode_chunk(run_id: str, data: bytes) -> tuple[list[ev.RunEvent], RunEnd | None]:
    """The events of a stored chunk and the run's end, if the chunk records it."""
    document = json.loads(data)
    agent_id, parent = document["a"], document["p"]
    events = []
    answer = ""
    for item in document["e"]:
        if item[0] == "@":
            child, child_agent, child_parent, sequence, kind, *fields = item[1:]
            body = _body_from(kind, fields)
            events.append(ev.RunEvent(child, child_agent, sequence, body, child_parent))
            continue
        if item[1] == "c" and item[2] is None:
            item[2] = answer  # stored once, with the message completed before it
        body = _body_from(item[1], item[2:])
        if isinstance(body, ev.MessageCompleted):
            answer = body.message.content
        events.append(ev.RunEvent(run_id, agent_id, item[0], body, parent))
    calls = document.get("mc")
    if calls:
        events = [_with_model_calls(event, calls) for event in events]
    end = document.get("end")
    return events, (RunEnd(end[0], end[1]) if end is not None else None)


def _with_model_calls(event: ev.RunEvent, calls: dict[str, int]) -> ev.RunEvent:
    body = event.body
    if not isinstance(body, ev.RunCompleted) or event.run_id not in calls:
        return event
    usage = replace(body.usage, model_calls=int(calls[event.run_id]))
    return replace(event, body=replace(body, usage=usage))
