"""Built-in tools that need no network: a safe calculator and the current time."""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..core.tool_port import ServerTool

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "log": math.log,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_MAX_EXPRESSION = 500
_MAX_EXPONENT = 1000
# Integer results are bounded before they are computed: a chain like ((9**999)**999)**20
# would otherwise hold the event loop for tens of seconds. 10,000 bits is ~3,000 digits,
# computed in microseconds.
MAX_RESULT_BITS = 10_000


class CalculatorError(ValueError):
    """The expression is not plain arithmetic, or cannot be evaluated."""


def evaluate(expression: str) -> float | int:
    """Evaluate arithmetic by walking its syntax tree: numbers, + - * / // % **, a few
    math functions. No names, attributes or calls outside that list, so no `eval` risk."""
    if len(expression) > _MAX_EXPRESSION:
        raise CalculatorError(f"expression longer than {_MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise CalculatorError(f"not an arithmetic expression: {error.msg}") from None
    result: float | int = _eval(tree.body)
    return result


def _eval(node: ast.AST) -> Any:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise CalculatorError("exponent too large")
        _check_result_size(node.op, left, right)
        try:
            return _BINARY[type(node.op)](left, right)
        except (ZeroDivisionError, OverflowError) as error:
            raise CalculatorError(str(error)) from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        try:
            return _FUNCTIONS[node.func.id](*(_eval(a) for a in node.args))
        except (ValueError, TypeError) as error:
            raise CalculatorError(str(error)) from None
    raise CalculatorError(f"unsupported element: {type(node).__name__}")


def _check_result_size(op: ast.operator, left: Any, right: Any) -> None:
    """Refuse an integer product or power whose result would exceed MAX_RESULT_BITS."""
    if not (isinstance(left, int) and isinstance(right, int)):
        return
    if isinstance(op, ast.Pow) and right > 0 and abs(left) > 1:
        bits = left.bit_length() * right
    elif isinstance(op, ast.Mult):
        bits = left.bit_length() + right.bit_length()
    else:
        return
    if bits > MAX_RESULT_BITS:
        raise CalculatorError(
            f"the result would have about {bits} bits; at most {MAX_RESULT_BITS} are allowed"
        )


async def _calculator(args: dict[str, Any]) -> str:
    result = evaluate(str(args["expression"]))
    return repr(result) if isinstance(result, float) else str(result)


async def _current_time(args: dict[str, Any]) -> str:
    zone = str(args.get("timezone") or "UTC")
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{zone}'") from None
    return dt.datetime.now(tz).isoformat(timespec="seconds")


def _string_parameter(name: str, description: str, *, required: bool) -> dict[str, Any]:
    """The JSON schema of a tool taking one string argument."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: {"type": "string", "description": description}},
        "additionalProperties": False,
    }
    if required:
        schema["required"] = [name]
    return schema


def builtin_tools() -> list[ServerTool]:
    """The tools every server has."""
    return [
        ServerTool(
            name="calculator",
            description="Evaluate an arithmetic expression, e.g. '(2 + 3) * sqrt(16)'.",
            parameters=_string_parameter("expression", "The expression", required=True),
            handler=_calculator,
        ),
        ServerTool(
            name="current_time",
            description="The current date and time in an IANA time zone (default UTC).",
            parameters=_string_parameter("timezone", "e.g. Europe/Paris", required=False),
            handler=_current_time,
        ),
    ]
