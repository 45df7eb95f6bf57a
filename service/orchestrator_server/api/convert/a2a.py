"""A2A (`lf.a2a.v1`) messages <-> domain types: a run is an A2A task (its id the run id,
its context the session), its answer one text artifact, streamed as artifact updates."""

from __future__ import annotations

import time
import uuid

from a2a.types import a2a_pb2
from a2a.utils.errors import ContentTypeNotSupportedError, InvalidParamsError

from ...core import events as ev
from ...core.errors import InvalidArgumentError, Reason
from ...core.types import Run, RunStatus, TurnRequest
from ...core.validation import check_session_id
from .common import timestamp

StreamEvent = a2a_pb2.Task | a2a_pb2.TaskStatusUpdateEvent | a2a_pb2.TaskArtifactUpdateEvent
ANSWER_ARTIFACT = "answer"  # the one artifact of a task: the agent's answer
_STATES = {
    RunStatus.QUEUED: a2a_pb2.TASK_STATE_SUBMITTED,
    RunStatus.RUNNING: a2a_pb2.TASK_STATE_WORKING,
    RunStatus.COMPLETED: a2a_pb2.TASK_STATE_COMPLETED,
    RunStatus.FAILED: a2a_pb2.TASK_STATE_FAILED,
    RunStatus.CANCELLED: a2a_pb2.TASK_STATE_CANCELED,
    RunStatus.INTERRUPTED: a2a_pb2.TASK_STATE_FAILED,
}
TERMINAL = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INTERRUPTED}
)


def state_of(status: RunStatus) -> a2a_pb2.TaskState:
    """The A2A task state of a run status (INTERRUPTED, cut by a server stop or crash,
    is FAILED)."""
    return _STATES[status]


def turn_request_of(
    params: a2a_pb2.SendMessageRequest, continue_on_disconnect: bool
) -> TurnRequest:
    """The turn a SendMessage starts: the agent named by the request's `tenant` (empty:
    the tenant's default agent), the session named by the message's `context_id`, the
    message's text parts joined by newlines."""
    message = params.message
    if message.task_id:
        raise InvalidParamsError(
            "a task here is one turn and ends with it: continue the conversation with a new "
            "message in the same context_id"
        )
    texts: list[str] = []
    for part in message.parts:
        if part.WhichOneof("content") != "text":
            raise ContentTypeNotSupportedError("only text parts are accepted")
        texts.append(part.text)
    if not texts:
        raise InvalidParamsError("the message has no text part")
    return TurnRequest(
        agent_id=params.tenant,
        message="\n".join(texts),
        session_id=_context_of(message.context_id),
        continue_on_disconnect=continue_on_disconnect,
    )


def _context_of(context_id: str) -> str:
    """The session of a context: a new one for a message without a context (as A2A
    asks), else the one named, which must be a valid session id."""
    if not context_id:
        return f"ctx-{uuid.uuid4().hex}"
    try:
        return check_session_id(context_id, "message.context_id")
    except InvalidArgumentError as error:
        raise InvalidParamsError(
            "context_id must be 1-63 lowercase letters, digits, '_' or '-', starting with a "
            "letter (leave it empty to start a new context)"
        ) from error


def text_message(
    role: a2a_pb2.Role, text: str, run_id: str, session_id: str, message_id: str
) -> a2a_pb2.Message:
    """A one-part text message of a run's task."""
    return a2a_pb2.Message(
        message_id=message_id,
        context_id=session_id,
        task_id=run_id,
        role=role,
        parts=[a2a_pb2.Part(text=text)],
    )


def task_of(run: Run, *, artifacts: bool = True, history_length: int | None = None) -> a2a_pb2.Task:
    """A run as an A2A task: its state (with the error message of a failed or cancelled
    run), its answer as an artifact, its history (the user message and the answer)."""
    status = a2a_pb2.TaskStatus(
        state=state_of(run.status),
        timestamp=timestamp(run.end_time or run.start_time or run.create_time),
    )
    ids = (run.run_id, run.session_id)
    if run.error_message:
        text = f"{run.error_reason}: {run.error_message}"
        status.message.CopyFrom(text_message(a2a_pb2.ROLE_AGENT, text, *ids, f"{ids[0]}-status"))
    task = a2a_pb2.Task(id=run.run_id, context_id=run.session_id, status=status)
    if artifacts and run.output:
        task.artifacts.append(answer_artifact(run.output))
    history = [text_message(a2a_pb2.ROLE_USER, run.input, *ids, f"{ids[0]}-input")]
    if run.status is RunStatus.COMPLETED:
        history.append(text_message(a2a_pb2.ROLE_AGENT, run.output, *ids, f"{ids[0]}-output"))
    if history_length is not None:
        history = history[-history_length:] if history_length else []
    task.history.extend(history)
    return task


def answer_artifact(text: str) -> a2a_pb2.Artifact:
    """The answer (or a piece of it) as the task's artifact."""
    return a2a_pb2.Artifact(
        artifact_id=ANSWER_ARTIFACT, name="answer", parts=[a2a_pb2.Part(text=text)]
    )


class TaskEvents:
    """Turns the events of one run into A2A stream events: the task first (with the
    user message `message`; no task when None: a subscriber got it already), its answer
    as artifact updates (the first chunk creates the artifact, the next ones append, the
    last says so), then its final status."""

    def __init__(self, run_id: str, session_id: str, message: str | None = None) -> None:
        self.run_id = run_id
        self.session_id = session_id
        self._message = message
        self.started = message is None
        self.ended = False
        self._streamed = False

    def status(self, state: a2a_pb2.TaskState, text: str = "") -> a2a_pb2.TaskStatusUpdateEvent:
        """A status update of the task (with an agent message when `text`)."""
        status = a2a_pb2.TaskStatus(state=state)
        if text:
            message_id = f"{self.run_id}-status"
            role = a2a_pb2.ROLE_AGENT
            status.message.CopyFrom(
                text_message(role, text, self.run_id, self.session_id, message_id)
            )
        return a2a_pb2.TaskStatusUpdateEvent(
            task_id=self.run_id, context_id=self.session_id, status=status
        )

    def chunk(self, text: str, last: bool) -> a2a_pb2.TaskArtifactUpdateEvent:
        """A piece of the answer."""
        update = a2a_pb2.TaskArtifactUpdateEvent(
            task_id=self.run_id,
            context_id=self.session_id,
            artifact=answer_artifact(text),
            append=self._streamed,
            last_chunk=last,
        )
        self._streamed = True
        return update

    def convert(self, event: ev.RunEvent) -> list[StreamEvent]:
        """The A2A events of one of the run's events (none for child runs' events, tool
        calls and intermediate messages)."""
        if event.run_id != self.run_id:
            return []
        body = event.body
        if isinstance(body, ev.RunStarted):
            return self._started(event.agent_id, body)
        if isinstance(body, ev.TextDelta):
            return [self.chunk(body.text, last=False)] if body.text else []
        if isinstance(body, ev.RunCompleted):
            self.ended = True
            last = self.chunk("" if self._streamed else body.output, last=True)
            return [last, self.status(a2a_pb2.TASK_STATE_COMPLETED)]
        if isinstance(body, ev.RunCancelled):
            self.ended = True
            # Cut by a server stop: recorded INTERRUPTED, which a task shows as FAILED.
            interrupted = body.reason == Reason.RUN_INTERRUPTED
            state = a2a_pb2.TASK_STATE_FAILED if interrupted else a2a_pb2.TASK_STATE_CANCELED
            return [self.status(state, f"{body.reason}: {body.message}")]
        return []

    def _started(self, agent_id: str, body: ev.RunStarted) -> list[StreamEvent]:
        """The task as it starts (submitted when queued, else working)."""
        if self._message is None:
            return []
        self.started, self.session_id = True, body.session_id
        status = RunStatus.QUEUED if body.status is RunStatus.QUEUED else RunStatus.RUNNING
        run = Run(self.run_id, agent_id, body.session_id, status, self._message, time.time())
        return [task_of(run, artifacts=False)]

    def failed(self, reason: str, message: str) -> a2a_pb2.TaskStatusUpdateEvent:
        """The final status of a run that failed after it started."""
        self.ended = True
        return self.status(a2a_pb2.TASK_STATE_FAILED, f"{reason}: {message}")
