"""Signatures taken from another callable, for type checkers and for `help()` alike.

A function that only passes its arguments on (`run` to `stream`, the blocking client's
constructor to AsyncOrchestrator's) declares `*args, **kwargs` and borrows the parameters
of the callable it passes them to, so that they are written down once. A ParamSpec gives
type checkers the borrowed parameters; `__signature__` gives them to `inspect.signature`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def _with_parameters(
    function: Callable[..., Any], parameters: list[inspect.Parameter]
) -> inspect.Signature:
    """`function`'s signature with these parameters (its own return annotation kept)."""
    return inspect.signature(function).replace(parameters=parameters)


def same_parameters(source: Callable[P, Any]) -> Callable[[Callable[..., R]], Callable[P, R]]:
    """Give the decorated function the parameters of `source` (a method those of a method)."""

    def decorate(function: Callable[..., R]) -> Callable[P, R]:
        parameters = list(inspect.signature(source).parameters.values())
        function.__signature__ = _with_parameters(function, parameters)  # type: ignore[attr-defined]
        return function

    return decorate


def method_with_parameters(
    source: Callable[P, Any],
) -> Callable[[Callable[Concatenate[S, ...], R]], Callable[Concatenate[S, P], R]]:
    """Give the decorated method `self` and then the parameters of `source` (e.g. a class,
    whose parameters are its constructor's)."""

    def decorate(function: Callable[Concatenate[S, ...], R]) -> Callable[Concatenate[S, P], R]:
        self = next(iter(inspect.signature(function).parameters.values()))
        parameters = [self, *inspect.signature(source).parameters.values()]
        function.__signature__ = _with_parameters(function, parameters)  # type: ignore[attr-defined]
        return function

    return decorate
