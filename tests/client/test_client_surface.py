"""The client's surface without a server: the blocking Orchestrator is derived from
AsyncOrchestrator (same methods, parameters and docstrings), one StartTurn builder, and
the size limits of the package's modules."""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import signal
import threading
import typing
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from orchestrator import (
    Agent,
    Answer,
    AsyncOrchestrator,
    Orchestrator,
    SyncChat,
    SyncCollaborationStream,
    SyncRunStream,
    connect,
)
from orchestrator._blocking import blocking, forward_undeclared
from orchestrator._sync import FORWARDED_UNDECLARED
from orchestrator.cli.output import to_jsonable

PACKAGE = Path(inspect.getfile(AsyncOrchestrator)).parent
UNUSED_ADDRESS = "127.0.0.1:1"  # channels connect lazily: no call here reaches it

PUBLIC = sorted(
    name
    for name, _ in inspect.getmembers(AsyncOrchestrator, inspect.isfunction)
    if not name.startswith("_")
)

# What a blocking method returns where it is not what the coroutine returns.
BLOCKING_RETURNS: dict[str, object] = {
    "stream": SyncRunStream,
    "follow": SyncRunStream,
    "chat": SyncChat,
    "stream_team": SyncCollaborationStream,
    "stream_pipeline": SyncCollaborationStream,
    "run": Answer,
}


def test_the_async_client_has_the_calls_this_test_expects() -> None:
    assert set(BLOCKING_RETURNS) | {"create_agent", "iter_agents", "close"} <= set(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_blocking_method_has_the_async_parameters_and_docstring(name: str) -> None:
    asynchronous = getattr(AsyncOrchestrator, name)
    blocking_form = getattr(Orchestrator, name)
    assert inspect.signature(blocking_form).parameters == inspect.signature(asynchronous).parameters
    if name != "close":  # the blocking close also stops the client's thread
        assert inspect.getdoc(blocking_form) == inspect.getdoc(asynchronous)


@pytest.mark.parametrize("name", PUBLIC)
def test_blocking_method_returns_the_blocking_form_of_the_result(name: str) -> None:
    returns = typing.get_type_hints(getattr(AsyncOrchestrator, name))["return"]
    if typing.get_origin(returns) is AsyncIterator:
        expected: object = Iterator[typing.get_args(returns)[0]]
    else:
        expected = BLOCKING_RETURNS.get(name, returns)
    actual = inspect.signature(getattr(Orchestrator, name)).return_annotation
    assert actual in (expected, "None" if expected is type(None) else expected)


def test_every_method_is_declared_for_type_checkers() -> None:
    lines = [f"    {name} = blocking(AsyncOrchestrator.{name})" for name in FORWARDED_UNDECLARED]
    assert not lines, "add to the Orchestrator class body:\n" + "\n".join(lines)


def test_constructor_and_connect_take_the_async_constructor_parameters() -> None:
    parameters = inspect.signature(AsyncOrchestrator).parameters
    assert inspect.signature(Orchestrator).parameters == parameters
    assert inspect.signature(connect).parameters == parameters


class _Extended(AsyncOrchestrator):
    async def ping(self, text: str, *, times: int = 1) -> str:
        """Repeat `text`."""
        await asyncio.sleep(0)
        return text * times

    async def count(self, up_to: int) -> AsyncIterator[int]:
        """0 to `up_to` - 1."""
        for number in range(up_to):
            yield number


def test_a_new_async_method_is_forwarded_with_its_signature() -> None:
    class BlockingExtended(Orchestrator):
        pass

    assert forward_undeclared(BlockingExtended, _Extended) == ("count", "ping")
    ping: typing.Any = BlockingExtended.ping
    assert inspect.signature(ping).parameters == inspect.signature(_Extended.ping).parameters
    assert ping.__doc__ == "Repeat `text`."
    with BlockingExtended(UNUSED_ADDRESS) as client:
        # The forwarders call the asyncio methods on the client's own AsyncOrchestrator.
        assert client.ping("ab", times=2) == "abab"
        assert list(client.count(3)) == [0, 1, 2]


class _Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: object) -> None:
    raise _Interrupted


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
def test_an_interrupted_blocking_call_cancels_its_coroutine() -> None:
    # Ctrl-C is a KeyboardInterrupt raised by a signal handler in the waiting thread; any
    # exception raised there must cancel the coroutine. A signal of our own stands in for
    # SIGINT, so that a stray one cannot end the test session.
    cancelled = threading.Event()

    class Waiting(AsyncOrchestrator):
        async def wait(self) -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

    class BlockingWaiting(Orchestrator):
        wait = blocking(Waiting.wait)

    previous = signal.signal(signal.SIGUSR1, _interrupt)
    try:
        with BlockingWaiting(UNUSED_ADDRESS) as client:
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1)).start()
            with pytest.raises(_Interrupted):
                client.wait()
            assert cancelled.wait(5)
    finally:
        signal.signal(signal.SIGUSR1, previous)


async def test_stream_and_chat_build_the_same_start_turn() -> None:
    def lookup(order_id: str) -> str:
        """Look an order up."""
        return order_id

    async with AsyncOrchestrator(UNUSED_ADDRESS) as client:
        options = {"session_id": "s", "wait_if_busy": True, "tools": [lookup], "tool_timeout": 5}
        stream = client.stream("hi", "agent", request_id="r", **options)
        async with client.chat("agent", **options) as chat:
            turn = chat.send("hi", request_id="r")
            assert turn._start == stream._start
            assert stream._start.client_tools[0].name == "lookup"
        await stream.aclose()


def test_created_is_not_part_of_the_agent_as_data() -> None:
    created = Agent("a", created=True)
    assert created == Agent("a") and "created" not in repr(created)
    assert "created" not in to_jsonable(created)


def _modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "v1" not in p.relative_to(PACKAGE).parts]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= 400, "split the module"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            assert node.end_lineno - node.lineno < 60, f"{node.name} is over 60 lines"
