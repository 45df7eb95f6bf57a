"""How the client commands print: human-readable text, or JSON for scripts."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TextIO, TypeVar

from .. import types as t

T = TypeVar("T")

_EVENT_TYPES: dict[type, str] = {
    t.RunStarted: "run_started",
    t.TextDelta: "text_delta",
    t.MessageCompleted: "message_completed",
    t.RunCompleted: "run_completed",
    t.RunCancelled: "run_cancelled",
    t.ToolCallStarted: "tool_call",
    t.ToolCallFinished: "tool_result",
    t.CollaborationStarted: "started",
    t.ParticipantStarted: "participant_started",
    t.ParticipantEvent: "run_event",
    t.ParticipantFinished: "participant_finished",
    t.CollaborationCompleted: "completed",
}


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums, datetimes and tuples as plain JSON values.

    A dataclass field left out of its repr (`Agent.created`: what a call did, not part
    of the resource) is left out here too.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {
            f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr
        }
        event_type = _EVENT_TYPES.get(type(value))
        return {"type": event_type, **data} if event_type else data
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def when(value: datetime | None) -> str:
    """A timestamp to the second, or `-`."""
    return value.isoformat(timespec="seconds") if value else "-"


class Output:
    """Where results go: human-readable text, or JSON for scripts."""

    def __init__(self, as_json: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.json = as_json
        self.out = out
        self.err = err

    def document(self, value: Any) -> None:
        """One JSON document (in JSON mode)."""
        self.out.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")

    def json_line(self, value: Any) -> None:
        """One JSON object on one line, flushed (for streams)."""
        self.text(json.dumps(to_jsonable(value), ensure_ascii=False) + "\n")

    def text(self, text: str) -> None:
        """Text as it arrives (no newline added)."""
        self.out.write(text)
        self.out.flush()

    def line(self, text: str = "") -> None:
        """One line of human-readable output."""
        self.text(text + "\n")

    def note(self, text: str) -> None:
        """A message for the person at the terminal, never mixed into the results."""
        self.err.write(text + "\n")
        self.err.flush()

    def result(self, document: Any, text: str) -> None:
        """`document` as JSON, or `text` as a line."""
        if self.json:
            self.document(document)
        else:
            self.line(text)

    def record(self, value: Any, rows: Sequence[tuple[str, str]], width: int) -> None:
        """A resource as JSON, or its `rows` as `name:` and value, one per line."""
        if self.json:
            self.document(value)
            return
        for name, shown in rows:
            self.line(f"{name + ':':<{width}}{shown}")

    def table(
        self,
        items: Sequence[T],
        header: Sequence[str],
        row: Callable[[T], Sequence[str]],
    ) -> None:
        """Resources as a JSON list, or one aligned row each under a header."""
        if self.json:
            self.document(items)
            return
        rows = [header, *(row(item) for item in items)]
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
        for cells in rows:
            self.line(
                "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
            )
