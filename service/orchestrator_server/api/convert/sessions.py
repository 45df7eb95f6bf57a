"""Session and message messages <-> domain conversations."""

from __future__ import annotations

from orchestrator.v1 import session_pb2

from ...core import types
from .common import timestamp

_ROLE_TO_PB = {
    types.Role.USER: session_pb2.MESSAGE_ROLE_USER,
    types.Role.ASSISTANT: session_pb2.MESSAGE_ROLE_ASSISTANT,
    types.Role.TOOL: session_pb2.MESSAGE_ROLE_TOOL,
}


def message_to_pb(message: types.Message) -> session_pb2.Message:
    """A stored message."""
    return session_pb2.Message(
        sequence=message.sequence,
        role=_ROLE_TO_PB[message.role],
        content=message.content,
        tool_calls=[
            session_pb2.ToolCall(call_id=c.call_id, name=c.name, arguments_json=c.arguments_json)
            for c in message.tool_calls
        ],
        tool_call_id=message.tool_call_id,
        run_id=message.run_id,
        create_time=timestamp(message.create_time),
    )


def session_to_pb(session: types.Session) -> session_pb2.Session:
    """A session summary."""
    return session_pb2.Session(
        agent_id=session.agent_id,
        session_id=session.session_id,
        message_count=session.message_count,
        create_time=timestamp(session.create_time),
        update_time=timestamp(session.update_time),
        owner=session.owner,
    )
