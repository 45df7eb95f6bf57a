"""Agent messages <-> domain agents."""

from __future__ import annotations

from orchestrator.v1 import agent_pb2

from ...core import types
from .common import timestamp


def model_spec_from_pb(pb: agent_pb2.ModelSpec) -> types.ModelSpec:
    """Domain ModelSpec; proto3 `optional` presence becomes None."""
    return types.ModelSpec(
        provider=pb.provider,
        model=pb.model,
        temperature=pb.temperature if pb.HasField("temperature") else None,
        max_tokens=pb.max_tokens if pb.HasField("max_tokens") else None,
        top_p=pb.top_p if pb.HasField("top_p") else None,
        stop=tuple(pb.stop),
        seed=pb.seed if pb.HasField("seed") else None,
    )


def agent_spec_from_pb(pb: agent_pb2.Agent) -> types.AgentSpec:
    """The caller-set fields of an Agent message (output-only fields are ignored)."""
    return types.AgentSpec(
        system_message=pb.system_message,
        description=pb.description,
        model=model_spec_from_pb(pb.model),
        memory=types.MemoryConfig(max_messages=pb.memory.max_messages),
        tools=tuple(pb.tools),
        labels=dict(pb.labels),
        callable_agents=tuple(pb.callable_agents),
        max_model_calls=pb.max_model_calls,
    )


def model_spec_to_pb(spec: types.ModelSpec) -> agent_pb2.ModelSpec:
    """ModelSpec message; unset optionals stay unset."""
    pb = agent_pb2.ModelSpec(provider=spec.provider, model=spec.model, stop=spec.stop)
    if spec.temperature is not None:
        pb.temperature = spec.temperature
    if spec.max_tokens is not None:
        pb.max_tokens = spec.max_tokens
    if spec.top_p is not None:
        pb.top_p = spec.top_p
    if spec.seed is not None:
        pb.seed = spec.seed
    return pb


def agent_to_pb(agent: types.Agent) -> agent_pb2.Agent:
    """Agent message with its bookkeeping fields."""
    spec = agent.spec
    return agent_pb2.Agent(
        agent_id=agent.agent_id,
        system_message=spec.system_message,
        description=spec.description,
        model=model_spec_to_pb(spec.model),
        memory=agent_pb2.MemoryConfig(max_messages=spec.memory.max_messages),
        tools=spec.tools,
        labels=spec.labels,
        callable_agents=spec.callable_agents,
        max_model_calls=spec.max_model_calls,
        is_default=agent.is_default,
        create_time=timestamp(agent.create_time),
        update_time=timestamp(agent.update_time),
        etag=agent.etag,
    )
