"""Blocking forms of asyncio methods, derived from the methods instead of written again.

In the body of a `Blocking` class, `name = blocking(AsyncClass.name)` is a method that
calls `AsyncClass.name` on the wrapped asyncio object (`self._target`) and waits for it
on the object's LoopThread (`self._loop`). What it returns follows from what the asyncio
method returns:

    async def ...() -> R                  R (the coroutine runs on the loop)
    async def ...() -> AsyncIterator[T]   Iterator[T] (each item is awaited on the loop)
    def ...() -> RunStream                SyncRunStream (likewise ChatSession, SyncChat;
                                          CollaborationStream, SyncCollaborationStream)

The parameters, their types and the docstring are the asyncio method's: a ParamSpec
carries them to type checkers, and `__signature__`/`__doc__` to `help()`.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import typing
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, ClassVar, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar, overload

from . import types as t
from ._chat import ChatSession
from ._collaboration import CollaborationStream
from ._loop import LoopThread
from ._stream import RunStream

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
S = TypeVar("S")
T = TypeVar("T")
E = TypeVar("E")


class Method(Protocol[P, R_co]):
    """What `blocking` makes, to a type checker: a method taking P and returning R."""

    @overload
    def __get__(
        self, instance: None, owner: type[Any], /
    ) -> Callable[Concatenate[Any, P], R_co]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any], /) -> Callable[P, R_co]: ...


class Blocking:
    """The base of blocking objects over asyncio ones: `with` closes them.

    A subclass names the asyncio class it stands for (`wraps=ChatSession`), so that
    `blocking` returns it in place of what an asyncio method returns of that class.
    """

    _wrappers: ClassVar[dict[type, type[_BlockingHandle[Any]]]] = {}
    _loop: LoopThread
    _target: Any

    def close(self) -> None:
        """Close it (blocks until it is closed)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Cancellable(Protocol):
    def cancel(self) -> None: ...
    def aclose(self) -> Coroutine[Any, Any, None]: ...


H = TypeVar("H", bound=_Cancellable)


class _BlockingHandle(Blocking, Generic[H]):
    """A blocking stream or chat: its asyncio object's `cancel` and `aclose`, from any thread."""

    def __init__(self, loop: LoopThread, target: H) -> None:
        self._loop = loop
        self._target: H = target

    def __init_subclass__(cls, wraps: type | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if wraps is not None:
            Blocking._wrappers[wraps] = cls

    def cancel(self) -> None:
        """Cancel, from any thread (a signal handler's too), without waiting: see `cancel`
        of the asyncio object (`RunStream`, `ChatSession`, `CollaborationStream`)."""
        self._loop.loop.call_soon_threadsafe(self._target.cancel)

    def close(self) -> None:
        """Stop, waiting until done; what still runs is cancelled on the server."""
        self._loop.call(self._target.aclose())


class _BlockingEvents(_BlockingHandle[H], Generic[H, E]):
    """A blocking iterator over an asyncio stream of events."""

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> E:
        try:
            event: E = self._loop.call(_anext(self._target))
        except StopAsyncIteration:
            raise StopIteration from None
        return event


async def _anext(iterator: Any) -> Any:
    return await iterator.__anext__()


def _iterate(loop: LoopThread, iterator: AsyncIterator[T]) -> Iterator[T]:
    while True:
        try:
            yield loop.call(_anext(iterator))
        except StopAsyncIteration:
            return


class SyncRunStream(_BlockingEvents[RunStream, t.RunEvent], wraps=RunStream):
    """The events of one turn as a blocking iterator (`with` / `for`); `cancel()` asks the
    server to stop the turn (the events then end with RunCancelled)."""

    @property
    def run_id(self) -> str:
        """The run's id, known once RunStarted arrived."""
        return self._target.run_id


class SyncCollaborationStream(
    _BlockingEvents[CollaborationStream, t.CollaborationEvent], wraps=CollaborationStream
):
    """The events of a pipeline or team run as a blocking iterator (`with` / `for`);
    `cancel()` cancels the collaboration (reading then raises RunCancelledError)."""

    @property
    def run_id(self) -> str:
        """The collaboration's run id, known once CollaborationStarted arrived."""
        return self._target.run_id

    @property
    def session_id(self) -> str:
        """The participants' session, known once CollaborationStarted arrived."""
        return self._target.session_id


@overload
def blocking(method: Callable[Concatenate[Any, P], RunStream]) -> Method[P, SyncRunStream]: ...
@overload
def blocking(method: Callable[Concatenate[Any, P], ChatSession]) -> Method[P, SyncChat]: ...
@overload
def blocking(
    method: Callable[Concatenate[Any, P], CollaborationStream],
) -> Method[P, SyncCollaborationStream]: ...
@overload
def blocking(method: Callable[Concatenate[Any, P], AsyncIterator[T]]) -> Method[P, Iterator[T]]: ...
@overload
def blocking(method: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]) -> Method[P, R]: ...
@overload
def blocking(
    method: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]], result: Callable[[R], S]
) -> Method[P, S]: ...
def blocking(method: Callable[..., Any], result: Callable[[Any], Any] | None = None) -> Any:
    """The blocking form of an asyncio method (see the module's docstring); `result`
    converts what the coroutine returns (e.g. `Answer`)."""
    returns = typing.get_type_hints(method).get("return")
    wrapper = _wrapper_of(returns)
    convert = result or _unchanged
    is_iterator = typing.get_origin(returns) in _ASYNC_ITERATORS
    if wrapper is not None:
        sync_returns: Any = wrapper
    elif is_iterator:
        sync_returns = Iterator[typing.get_args(returns)[0]]  # type: ignore[misc]
    elif inspect.iscoroutinefunction(method):
        sync_returns = result if isinstance(result, type) else returns
    else:
        raise TypeError(f"no blocking form of {method.__qualname__}, which returns {returns!r}")

    def forward(self: Blocking, *args: Any, **kwargs: Any) -> Any:
        # Called here, not on the loop: a coroutine or generator runs nothing until it is
        # awaited, and a stream object starts its call at its first read.
        value = method(self._target, *args, **kwargs)
        if wrapper is not None:
            return wrapper(self._loop, value)
        if is_iterator:
            return _iterate(self._loop, value)
        return convert(self._loop.call(value))

    functools.update_wrapper(forward, method)
    forward.__signature__ = inspect.signature(method).replace(  # type: ignore[attr-defined]
        return_annotation=sync_returns
    )
    return forward


def forward_undeclared(blocking_cls: type[Blocking], async_cls: type) -> tuple[str, ...]:
    """Give `blocking_cls` the blocking form of every public method of `async_cls` its body
    does not name; returns their names (type checkers do not see these)."""
    names = []
    for name, method in inspect.getmembers(async_cls, inspect.isfunction):
        if not name.startswith("_") and not hasattr(blocking_cls, name):
            setattr(blocking_cls, name, blocking(method))
            names.append(name)
    return tuple(names)


_ASYNC_ITERATORS = (collections.abc.AsyncIterator, collections.abc.AsyncGenerator)


def _unchanged(value: T) -> T:
    return value


def _wrapper_of(returns: object) -> type[_BlockingHandle[Any]] | None:
    for cls in returns.__mro__ if isinstance(returns, type) else ():
        if cls in Blocking._wrappers:
            return Blocking._wrappers[cls]
    return None


class SyncChat(_BlockingHandle[ChatSession], wraps=ChatSession):
    """A multi-turn conversation on one stream, blocking flavour of ChatSession
    (`with client.chat(...) as chat`); `cancel()` cancels the turn in progress."""

    send = blocking(ChatSession.send)

    @property
    def session_id(self) -> str:
        """The session (known after the first turn when the default one was used)."""
        return self._target.session_id
