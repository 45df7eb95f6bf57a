"""Agent messages <-> domain agents.

Scalar and repeated fields carry the same names on both sides, so they are copied by
name; only presence (proto3 `optional` <-> None) and the nested messages need code.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Literal

from orchestrator.v1 import agent_pb2

from ...core import types
from .common import timestamp

# Optional sampling parameters: unset in the message <-> None in the domain.
_OPTIONAL_MODEL_FIELDS: tuple[Literal["temperature", "max_tokens", "top_p", "seed"], ...] = (
    "temperature",
    "max_tokens",
    "top_p",
    "seed",
)
# AgentSpec fields copied as they are (tuples and dicts become repeated and map fields).
_PLAIN_AGENT_FIELDS = (
    "system_message",
    "description",
    "tools",
    "labels",
    "callable_agents",
    "max_model_calls",
)
_plain_agent_values = operator.attrgetter(*_PLAIN_AGENT_FIELDS)
_CONTAINERS: dict[str, Callable[[Any], Any]] = {
    "tools": tuple,
    "labels": dict,
    "callable_agents": tuple,
}


def model_spec_from_pb(pb: agent_pb2.ModelSpec) -> types.ModelSpec:
    """Domain ModelSpec; proto3 `optional` presence becomes None."""
    optional = {f: getattr(pb, f) if pb.HasField(f) else None for f in _OPTIONAL_MODEL_FIELDS}
    return types.ModelSpec(provider=pb.provider, model=pb.model, stop=tuple(pb.stop), **optional)


def agent_spec_from_pb(pb: agent_pb2.Agent) -> types.AgentSpec:
    """The caller-set fields of an Agent message (output-only fields are ignored)."""
    plain = {name: _CONTAINERS.get(name, _same)(getattr(pb, name)) for name in _PLAIN_AGENT_FIELDS}
    return types.AgentSpec(
        model=model_spec_from_pb(pb.model),
        memory=types.MemoryConfig(max_messages=pb.memory.max_messages),
        access=types.AgentAccess(
            runners=tuple(pb.access.runners), readers=tuple(pb.access.readers)
        ),
        **plain,
    )


def _same(value: Any) -> Any:
    return value


def model_spec_to_pb(spec: types.ModelSpec) -> agent_pb2.ModelSpec:
    """ModelSpec message; unset optionals stay unset."""
    optional = {f: getattr(spec, f) for f in _OPTIONAL_MODEL_FIELDS if getattr(spec, f) is not None}
    return agent_pb2.ModelSpec(provider=spec.provider, model=spec.model, stop=spec.stop, **optional)


def agent_to_pb(agent: types.Agent) -> agent_pb2.Agent:
    """Agent message with its bookkeeping fields."""
    spec = agent.spec
    return agent_pb2.Agent(
        agent_id=agent.agent_id,
        model=model_spec_to_pb(spec.model),
        memory=agent_pb2.MemoryConfig(max_messages=spec.memory.max_messages),
        access=agent_pb2.AgentAccess(runners=spec.access.runners, readers=spec.access.readers)
        if spec.access.runners or spec.access.readers
        else None,
        is_default=agent.is_default,
        create_time=timestamp(agent.create_time),
        update_time=timestamp(agent.update_time),
        etag=agent.etag,
        # attrgetter + zip: ListAgents converts a hundred agents per page.
        **dict(zip(_PLAIN_AGENT_FIELDS, _plain_agent_values(spec), strict=True)),
    )
