"""Input rules shared by every entry point: ids, labels, model parameters, page sizes."""

from __future__ import annotations

import math
import re

from .errors import InvalidArgumentError, Reason
from .types import DEFAULT_SESSION_ID, AgentSpec, TurnRequest

# The original API's agent_id: lowercase letters, digits, `_` and `-`, starting with a
# letter, at most 63 characters (a DNS-label-sized name that is safe in URLs and logs).
# Every pattern here is applied with fullmatch: `$` alone would accept a trailing newline.
_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_REQUEST_ID_MAX = 128
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_SYSTEM_MESSAGE_CHARS = 100_000
MAX_DESCRIPTION_CHARS = 2_000
MAX_LABELS = 64
MAX_TOOLS = 128
# Each callable agent is a tool the model may call, all at once in one response.
MAX_CALLABLE_AGENTS = 32
MAX_STOP_SEQUENCES = 4
MAX_MESSAGE_CHARS = 1_000_000
# The longest a run waits, after its caller dropped, for the caller to follow it again.
MAX_RESUME_WINDOW_SECONDS = 300
# The longest a run waits for a client tool's result: a detached run whose caller is gone
# must still end.
MAX_CLIENT_TOOL_TIMEOUT_SECONDS = 3600


def check_agent_id(agent_id: str, field: str = "agent_id") -> str:
    """Return the id if it follows the naming rules, else raise INVALID_AGENT_ID."""
    if not agent_id:
        raise InvalidArgumentError.for_field(field, "is required", reason=Reason.INVALID_AGENT_ID)
    if not _ID_PATTERN.fullmatch(agent_id):
        raise InvalidArgumentError.for_field(
            field,
            "must be 1-63 lowercase letters, digits, '_' or '-', starting with a letter",
            reason=Reason.INVALID_AGENT_ID,
            metadata={"agent_id": agent_id[:80]},
        )
    return agent_id


def check_session_id(session_id: str, field: str = "session_id") -> str:
    """Return the session id if it follows the same rules as agent ids."""
    if not _ID_PATTERN.fullmatch(session_id):
        raise InvalidArgumentError.for_field(
            field, "must be 1-63 lowercase letters, digits, '_' or '-', starting with a letter"
        )
    return session_id


def check_request_id(request_id: str, field: str = "request_id") -> str:
    """Idempotency keys are opaque but bounded."""
    if len(request_id) > _REQUEST_ID_MAX:
        raise InvalidArgumentError.for_field(field, f"must be at most {_REQUEST_ID_MAX} characters")
    return request_id


def check_page_size(page_size: int) -> int:
    """Resolve 0 to the default and reject sizes outside 0..MAX_PAGE_SIZE."""
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise InvalidArgumentError.for_field(
            "page_size",
            f"must be between 0 and {MAX_PAGE_SIZE}",
            reason=Reason.INVALID_PAGE_SIZE,
            metadata={"max": str(MAX_PAGE_SIZE)},
        )
    return page_size or DEFAULT_PAGE_SIZE


def check_labels(labels: dict[str, str], field: str) -> None:
    """Label keys follow the id rules; values are short, printable strings."""
    if len(labels) > MAX_LABELS:
        raise InvalidArgumentError.for_field(field, f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not _ID_PATTERN.fullmatch(key):
            raise InvalidArgumentError.for_field(
                f"{field}[{key[:40]}]", "label keys follow the agent id rules"
            )
        if len(value) > 63 or not value.isprintable():
            raise InvalidArgumentError.for_field(
                f"{field}[{key}]", "label values are at most 63 printable characters"
            )


def check_message(message: str, field: str = "message") -> str:
    """A user message is required and bounded."""
    if not message:
        raise InvalidArgumentError.for_field(field, "is required")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidArgumentError.for_field(
            field,
            f"must be at most {MAX_MESSAGE_CHARS} characters",
            reason=Reason.REQUEST_TOO_LARGE,
            metadata={"limit": str(MAX_MESSAGE_CHARS)},
        )
    return message


def check_turn_request(request: TurnRequest) -> str:
    """Check what a turn asks for before anything runs; the session id it runs in."""
    check_message(request.message)
    check_request_id(request.request_id)
    session_id = check_session_id(request.session_id or DEFAULT_SESSION_ID)
    if not 0 <= request.max_model_calls <= 1000:
        raise InvalidArgumentError.for_field("start.max_model_calls", "must be 0 to 1000")
    timeout = request.client_tool_timeout
    if not math.isfinite(timeout) or not 0 <= timeout <= MAX_CLIENT_TOOL_TIMEOUT_SECONDS:
        raise InvalidArgumentError.for_field(
            "start.client_tool_timeout_seconds",
            f"must be 0 to {MAX_CLIENT_TOOL_TIMEOUT_SECONDS} seconds",
        )
    window = request.resume_window
    if window != 0 and not (math.isfinite(window) and 1 <= window <= MAX_RESUME_WINDOW_SECONDS):
        raise InvalidArgumentError.for_field(
            "start.resume_window_seconds", f"must be 0 or 1 to {MAX_RESUME_WINDOW_SECONDS}"
        )
    return session_id


def _check_range(value: float | None, low: float, high: float, field: str) -> None:
    if value is not None and (not math.isfinite(value) or not low <= value <= high):
        raise InvalidArgumentError.for_field(field, f"must be between {low} and {high}")


def check_agent_spec(spec: AgentSpec, prefix: str = "agent") -> None:
    """Validate every caller-set field of an agent; raise with the first violation."""
    if len(spec.system_message) > MAX_SYSTEM_MESSAGE_CHARS:
        raise InvalidArgumentError.for_field(
            f"{prefix}.system_message", f"must be at most {MAX_SYSTEM_MESSAGE_CHARS} characters"
        )
    if len(spec.description) > MAX_DESCRIPTION_CHARS:
        raise InvalidArgumentError.for_field(
            f"{prefix}.description", f"must be at most {MAX_DESCRIPTION_CHARS} characters"
        )
    model = spec.model
    if model.provider and not _ID_PATTERN.fullmatch(model.provider):
        raise InvalidArgumentError.for_field(f"{prefix}.model.provider", "is not a provider name")
    if len(model.model) > 256:
        raise InvalidArgumentError.for_field(f"{prefix}.model.model", "is too long")
    _check_range(model.temperature, 0.0, 2.0, f"{prefix}.model.temperature")
    _check_range(model.top_p, 0.0, 1.0, f"{prefix}.model.top_p")
    if model.max_tokens is not None and not 1 <= model.max_tokens <= 1_000_000:
        raise InvalidArgumentError.for_field(
            f"{prefix}.model.max_tokens", "must be between 1 and 1000000"
        )
    if len(model.stop) > MAX_STOP_SEQUENCES:
        raise InvalidArgumentError.for_field(
            f"{prefix}.model.stop", f"at most {MAX_STOP_SEQUENCES} stop sequences"
        )
    if not 0 <= spec.memory.max_messages <= 100_000:
        raise InvalidArgumentError.for_field(
            f"{prefix}.memory.max_messages", "must be between 0 and 100000"
        )
    if not 0 <= spec.max_model_calls <= 1000:
        raise InvalidArgumentError.for_field(
            f"{prefix}.max_model_calls", "must be between 0 and 1000"
        )
    if len(spec.tools) > MAX_TOOLS or len(set(spec.tools)) != len(spec.tools):
        raise InvalidArgumentError.for_field(
            f"{prefix}.tools", f"at most {MAX_TOOLS} distinct tool names"
        )
    callees = spec.callable_agents
    if len(callees) > MAX_CALLABLE_AGENTS or len(set(callees)) != len(callees):
        raise InvalidArgumentError.for_field(
            f"{prefix}.callable_agents", f"at most {MAX_CALLABLE_AGENTS} distinct agent ids"
        )
    for i, agent_id in enumerate(callees):
        check_agent_id(agent_id, f"{prefix}.callable_agents[{i}]")
    check_labels(spec.labels, f"{prefix}.labels")
    check_access_entries(spec.access.runners, f"{prefix}.access.runners")
    check_access_entries(spec.access.readers, f"{prefix}.access.readers")


MAX_ACCESS_ENTRIES = 100
_ACCESS_ENTRY = re.compile(
    r"^(principal|group):[^\x00-\x1f]{1,256}$|^role:(admin|editor|runner|viewer)$"
)


def check_access_entries(entries: tuple[str, ...], field: str) -> None:
    """An access list: at most MAX_ACCESS_ENTRIES distinct `principal:<id>`,
    `group:<name>` or `role:<role>` entries."""
    if len(entries) > MAX_ACCESS_ENTRIES or len(set(entries)) != len(entries):
        raise InvalidArgumentError.for_field(
            field, f"at most {MAX_ACCESS_ENTRIES} distinct entries"
        )
    for i, entry in enumerate(entries):
        if not _ACCESS_ENTRY.fullmatch(entry):
            raise InvalidArgumentError.for_field(
                f"{field}[{i}]",
                "must be principal:<id>, group:<name> or role:<admin|editor|runner|viewer>",
            )
