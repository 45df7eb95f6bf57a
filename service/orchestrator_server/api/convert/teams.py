"""Team, pipeline and collaboration-event messages <-> domain types."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.v1 import collaboration_pb2

from ...core import events as ev
from ...core import types
from .common import run_status_to_pb, timestamp, usage_to_pb
from .runs import event_to_pb

# Every TeamSpec field has the same name in the Team message.
_TEAM_FIELDS = tuple(f.name for f in dataclasses.fields(types.TeamSpec))


def team_spec_from_pb(pb: collaboration_pb2.Team) -> types.TeamSpec:
    """The caller-set fields of a Team message (output-only fields are ignored)."""
    values = {name: getattr(pb, name) for name in _TEAM_FIELDS}
    values["members"] = tuple(pb.members)
    return types.TeamSpec(**values)


def team_to_pb(team: types.Team) -> collaboration_pb2.Team:
    """Team message with its bookkeeping fields."""
    return collaboration_pb2.Team(
        team_id=team.team_id,
        create_time=timestamp(team.create_time),
        update_time=timestamp(team.update_time),
        etag=team.etag,
        **{name: getattr(team.spec, name) for name in _TEAM_FIELDS},
    )


def pipeline_steps_from_pb(
    steps: Iterable[collaboration_pb2.PipelineStep],
) -> list[types.PipelineStep]:
    """The steps of a RunPipelineRequest."""
    return [types.PipelineStep(s.agent_id, s.message_template) for s in steps]


_PARTICIPANT_ROLE_TO_PB = {
    ev.ParticipantRole.STEP: collaboration_pb2.PARTICIPANT_ROLE_STEP,
    ev.ParticipantRole.MEMBER: collaboration_pb2.PARTICIPANT_ROLE_MEMBER,
    ev.ParticipantRole.COORDINATOR: collaboration_pb2.PARTICIPANT_ROLE_COORDINATOR,
}


def participant_to_pb(participant: ev.Participant) -> collaboration_pb2.Participant:
    """Which step, member or coordinator."""
    return collaboration_pb2.Participant(
        role=_PARTICIPANT_ROLE_TO_PB[participant.role],
        index=participant.index,
        agent_id=participant.agent_id,
    )


def participant_result_to_pb(
    result: ev.ParticipantResult,
) -> collaboration_pb2.ParticipantResult:
    """How one participant ended."""
    return collaboration_pb2.ParticipantResult(
        participant=participant_to_pb(result.participant),
        run_id=result.run_id,
        status=run_status_to_pb(result.status),
        output=result.output,
        error_reason=result.error_reason,
        error_message=result.error_message,
        usage=usage_to_pb(result.usage),
        duration_ms=result.duration_ms,
    )


def _participant_started(
    pb: collaboration_pb2.CollaborationEvent, body: ev.ParticipantStarted
) -> None:
    pb.participant_started.message = body.message


def _participant_finished(
    pb: collaboration_pb2.CollaborationEvent, body: ev.ParticipantResult
) -> None:
    pb.participant_finished.CopyFrom(participant_result_to_pb(body))


def _started(pb: collaboration_pb2.CollaborationEvent, body: ev.CollaborationStarted) -> None:
    started = pb.started
    started.session_id = body.session_id
    started.participant_count = body.participant_count
    started.team_id = body.team_id


def _completed(pb: collaboration_pb2.CollaborationEvent, body: ev.CollaborationCompleted) -> None:
    pb.completed.CopyFrom(
        collaboration_pb2.CollaborationCompleted(
            output=body.output,
            results=[participant_result_to_pb(r) for r in body.results],
            usage=usage_to_pb(body.usage),
        )
    )


def _run_event(pb: collaboration_pb2.CollaborationEvent, body: ev.RunEvent) -> None:
    pb.run_event.CopyFrom(event_to_pb(body))


# How each collaboration event body fills its CollaborationEvent field.
_BODY_TO_PB: dict[type[Any], Callable[[collaboration_pb2.CollaborationEvent, Any], None]] = {
    ev.RunEvent: _run_event,
    ev.ParticipantStarted: _participant_started,
    ev.ParticipantResult: _participant_finished,
    ev.CollaborationStarted: _started,
    ev.CollaborationCompleted: _completed,
}


def collaboration_event_to_pb(
    event: ev.CollaborationEvent,
) -> collaboration_pb2.CollaborationEvent:
    """A domain collaboration event as a CollaborationEvent message."""
    pb = collaboration_pb2.CollaborationEvent(run_id=event.run_id, sequence=event.sequence)
    if event.participant is not None:
        pb.participant.CopyFrom(participant_to_pb(event.participant))
    _BODY_TO_PB[type(event.body)](pb, event.body)
    return pb
