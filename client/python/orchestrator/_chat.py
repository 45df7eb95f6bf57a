"""`ChatSession`: a multi-turn conversation whose turns share one Run stream.

Turns run one after another on the chat's stream, which stays open between them; a turn
that fails ends that stream with its status, so the next turn opens a new one.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import _convert
from . import types as t
from ._resume import RESUME_WINDOW_SECONDS, Resumption
from ._stream import AsyncClosing, OpenCall, RunStream, _RunCall
from ._tools import ClientTool
from .v1 import run_pb2


class ChatSession(AsyncClosing):
    """A multi-turn conversation on one Run stream (see `AsyncOrchestrator.chat`)."""

    def __init__(
        self,
        open_call: OpenCall,
        agent_id: str,
        session_id: str,
        wait_if_busy: bool,
        tools: Mapping[str, ClientTool] | None = None,
        tool_timeout: float | None = None,
        resumption: Resumption | None = None,
    ) -> None:
        self._open_call = open_call
        self._resumption = resumption
        self._tools = dict(tools or {})
        self._tool_timeout = tool_timeout
        self.agent_id = agent_id
        """The agent; filled in from the first turn when the default agent was used."""
        self.session_id = session_id
        """The session; filled in from the first turn when the default session was used."""
        self._wait_if_busy = wait_if_busy
        self._call: _RunCall | None = None
        self._turn: RunStream | None = None
        self._closed = False

    def send(self, message: str, *, request_id: str | None = None) -> RunStream:
        """Start a turn and return its events (iterate them before sending the next turn)."""
        if self._closed:
            raise RuntimeError("the chat is closed")
        start = _convert.start_turn(
            message,
            agent_id=self.agent_id,
            session_id=self.session_id,
            request_id=request_id,
            wait_if_busy=self._wait_if_busy,
            tools=self._tools,
            tool_timeout=self._tool_timeout,
            resume_window=RESUME_WINDOW_SECONDS if self._resumption else 0.0,
        )
        turn = _ChatTurn(self, start, self._turn)
        self._turn = turn
        return turn

    def _shared_call(self) -> _RunCall:
        # A failed turn ended the previous stream; the conversation continues on a new one.
        if self._call is None or self._call.ended:
            self._call = self._open_call()
        return self._call

    def _learn(self, event: t.RunStarted) -> None:
        self.agent_id = self.agent_id or event.agent_id
        self.session_id = self.session_id or event.session_id

    def cancel(self) -> None:
        """Cancel the turn in progress, if any (does not wait; its events end with RunCancelled)."""
        if self._turn is not None:
            self._turn.cancel()

    async def aclose(self) -> None:
        """End the conversation's stream (a turn still running is cancelled)."""
        self._closed = True
        if self._call is not None and not self._call.ended:
            if self._turn is not None and not self._turn._done:
                await self._turn.cancel_resumable()
                self._call.abort()
            else:
                await self._call.finish()


class _ChatTurn(RunStream):
    """One turn of a chat: shares the chat's stream instead of opening its own."""

    def __init__(
        self, chat: ChatSession, start: run_pb2.StartTurn, previous: RunStream | None
    ) -> None:
        super().__init__(chat._shared_call, start, chat._tools, chat._resumption)
        self._chat = chat
        self._previous = previous

    async def _open(self) -> _RunCall:
        await self._drain_previous()
        return self._chat._shared_call()

    def _after_failure(self, call: _RunCall) -> None:
        # The chat owns the stream: a failed call has ended it already (the next turn opens
        # a new one), and anything else is for the chat's own close to decide.
        pass

    async def _after_own_end(self, call: _RunCall) -> None:
        # The stream stays open for the next turn.
        pass

    def _is_own_start(self, event: t.RunEvent) -> bool:
        if not super()._is_own_start(event):
            return False
        assert isinstance(event, t.RunStarted)
        self._chat._learn(event)
        return True

    async def _drain_previous(self) -> None:
        """Finish a previous turn the caller stopped reading, so its events are not ours."""
        previous = self._previous
        self._previous = None
        if previous is None or previous._done:
            return
        if previous._call is None:
            # Never started: there is nothing on the stream to drain.
            previous._done = True
            return
        previous.cancel()
        try:
            async for _event in previous:
                pass
        except Exception:
            # Its error belonged to that turn; this one starts on a fresh stream.
            return

    async def aclose(self) -> None:
        """Stop reading this turn; it is cancelled, and the chat stays usable."""
        self._stop_tools()
        if self._done:
            return
        if self._call is None:
            self._done = True
        else:
            self.cancel()
