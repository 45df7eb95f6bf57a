"""In-process fakes of the core's ports for unit tests: a scripted chat model, a store
whose first write of a run can be held, and a factory for the core wired to them."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator_server.core.agents import AgentRegistry
from orchestrator_server.core.model_port import ChatMessage, ChatRequest, ModelTurnEnd
from orchestrator_server.core.pagination import PageTokens
from orchestrator_server.core.run_records import RunRecords
from orchestrator_server.core.runs import RunEngine
from orchestrator_server.core.types import AgentSpec, Message, Run, ToolCall, Usage
from orchestrator_server.store.memory import InMemoryStore


@dataclass(frozen=True)
class Reply:
    """One scripted model response: text (streamed word by word) and/or tool calls; a
    stalled reply waits until `ScriptedModel.unstall` is set; `error` is raised."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    stall: bool = False
    error: Exception | None = None


@dataclass
class ScriptedModel:
    """A ChatModel and ModelCatalog answering from a queue of replies (then `default`)."""

    replies: deque[Reply] = field(default_factory=deque)
    default: Reply = field(default_factory=lambda: Reply("ok"))
    calls: list[list[ChatMessage]] = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)  # a request was made
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    unstall: asyncio.Event = field(default_factory=asyncio.Event)
    name: str = "scripted"
    default_model: str = "scripted-model"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next model calls."""
        self.replies.extend(replies)

    async def resolve(self, provider: str) -> ScriptedModel:
        """Every provider is this model."""
        return self

    async def stream(self, request: ChatRequest) -> AsyncGenerator[str | ModelTurnEnd, None]:
        """Yield the next reply's words, then its end."""
        self.calls.append(list(request.messages))
        self.called.set()
        reply = self.replies.popleft() if self.replies else self.default
        if reply.stall:
            self.stalled.set()
            await self.unstall.wait()
        if reply.error is not None:
            raise reply.error
        words = reply.text.split(" ") if reply.text else []
        for i, word in enumerate(words):
            yield word if i == 0 else " " + word
        yield ModelTurnEnd(reply.tool_calls, Usage(10, len(words)), "stop")


class GatedStore(InMemoryStore):
    """An in-memory store whose run-starting write (of the runs `holds` picks, by default
    all) waits until `gate` is set; `entered` tells that one is waiting."""

    def __init__(self, holds: Callable[[Run], bool] = lambda run: True) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self._holds = holds

    async def begin_run(
        self, tenant: str, run: Run, user_message: Message | None, **options: Any
    ) -> Run:
        if self._holds(run):
            self.entered.set()
            await self.gate.wait()
        return await super().begin_run(tenant, run, user_message, **options)


class WriteHold:
    """Mixed in before a store: its run-starting write of the input `hold` stays in
    flight (a round trip taking long) until `release` is set; `writing` says it began."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hold = ""
        self.release = asyncio.Event()
        self.writing = asyncio.Event()

    async def begin_run(self, tenant: str, run: Run, user_message: Any, **options: Any) -> Run:
        if run.input == self.hold:
            self.writing.set()
            await self.release.wait()
        result: Run = await super().begin_run(tenant, run, user_message, **options)  # type: ignore[misc]
        return result


@dataclass
class Core:
    """The core wired to fakes."""

    store: InMemoryStore
    model: ScriptedModel
    agents: AgentRegistry
    engine: RunEngine
    records: RunRecords

    async def agent(self, agent_id: str, **spec: Any) -> None:
        """Create an agent (as the tenant's default if it is the first)."""
        first = not await self.store.default_agent_id("t")
        await self.agents.create("t", agent_id, AgentSpec(**spec), set_as_default=first)


async def collect(events: AsyncIterator[Any]) -> list[Any]:
    """Everything an event stream yields."""
    return [event async for event in events]


async def gated_core(store: GatedStore | None = None) -> tuple[GatedStore, Core]:
    """A core over a GatedStore with agent `alpha`; the next run's first write is held."""
    store = store or GatedStore()
    core = make_core(store)
    store.gate.set()
    await core.agent("alpha")
    store.gate.clear()
    store.entered.clear()
    return store, core


def make_core(store: InMemoryStore | None = None, **engine_options: Any) -> Core:
    """A RunEngine over an in-memory store and a scripted model."""
    store = store or InMemoryStore()
    model = ScriptedModel()
    tokens = PageTokens(b"unit-test-secret")
    agents = AgentRegistry(store, tokens)
    engine = RunEngine(store, agents, model, **engine_options)
    records = RunRecords(store, tokens, engine.active, engine_options.get("coordination"))
    return Core(store, model, agents, engine, records)
