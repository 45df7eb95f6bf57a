"""Tool-call arguments, parsed and checked against their tool's JSON schema, bounded.

The arguments come from a model and, for client tools, the schema from a client: both
untrusted. Three bounds keep the work finite and off the event loop:
  * size: arguments over MAX_ARGUMENT_CHARS are refused before they are parsed;
  * place: parsing and validation run in a worker thread;
  * time: every keyword the validator evaluates first checks a deadline
    (VALIDATION_SECONDS), so that validation really stops: a 1.6 KB schema of 22 nested
    `$ref`s in `anyOf` pairs would otherwise take hours (doubling per level).
Two keywords are replaced: `uniqueItems` (jsonschema compares all pairs, quadratic in the
array) by a linear check on canonical JSON, and for client schemas `pattern`,
`patternProperties` and `additionalProperties` by RE2 matching (client_tools).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, TypeVar

from .client_tools import ToolError, compiled_pattern
from .fair_limiter import FairLimiter
from .memory import parse_arguments

MAX_ARGUMENT_CHARS = 1_000_000
VALIDATION_SECONDS = 1.0
VALIDATION_THREADS = 2
Keyword = Callable[[Any, Any, Any, Any], Iterator[Any]]
T = TypeVar("T")
_deadline = threading.local()  # when the validation running on this thread must stop
# Threads of their own: validations cannot take the default executor's threads (which the
# model catalog and the store use) however many run at once; and they are shared among
# tenants like a provider's calls, so that a tenant sending many slow checks (up to 1 s
# each) queues behind the others' rather than ahead of them.
_threads = ThreadPoolExecutor(VALIDATION_THREADS, thread_name_prefix="validation")
_turns = FairLimiter(VALIDATION_THREADS)


async def in_validation_thread(tenant: str, fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) on a validation thread (schema and argument checks), in `tenant`'s turn."""
    async with _turns.slot(tenant):
        return await asyncio.get_running_loop().run_in_executor(_threads, fn, *args)


class _OverTime(Exception):
    """Validation took longer than it may."""


async def checked_arguments(
    tenant: str, arguments_json: str, schema: dict[str, Any], *, client: bool
) -> dict[str, object]:
    """The arguments of a tool call, parsed and valid for `schema`; ToolError (told to
    the model) otherwise. A client's schema is matched with RE2; the operator's tools
    (built-in, plugin, MCP) keep the standard pattern semantics."""
    if len(arguments_json) > MAX_ARGUMENT_CHARS:
        raise ToolError(
            f"invalid arguments: {len(arguments_json):,} characters, at most "
            f"{MAX_ARGUMENT_CHARS:,} are accepted"
        )
    return await in_validation_thread(tenant, _parse_and_validate, arguments_json, schema, client)


def _parse_and_validate(
    arguments_json: str, schema: dict[str, Any], client: bool
) -> dict[str, object]:
    try:
        args = parse_arguments(arguments_json)
    except RecursionError:
        args = None
    if args is None:
        raise ToolError("invalid arguments: not a JSON object")
    validate_arguments(args, schema, client=client)
    return args


def validate_arguments(args: dict[str, Any], schema: dict[str, Any], *, client: bool) -> None:
    """Check arguments against a schema within VALIDATION_SECONDS; ToolError if they do
    not match or the check would take longer."""
    cls = _validator_class(client)
    _deadline.at = time.monotonic() + VALIDATION_SECONDS
    try:
        error = next(cls(schema).iter_errors(args), None)
    except _OverTime:
        raise ToolError(
            f"invalid arguments: checking them against the tool's schema took over "
            f"{VALIDATION_SECONDS:g} s; simplify the schema"
        ) from None
    except (ValueError, RecursionError) as failure:
        raise ToolError(f"invalid arguments: {str(failure)[:500]}") from None
    if error is not None:
        raise ToolError(f"invalid arguments: {error.message[:500]}")


def _check_time() -> None:
    if time.monotonic() > _deadline.at:
        raise _OverTime


def _timed(keyword: Keyword) -> Keyword:
    def timed(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        _check_time()
        yield from keyword(validator, value, instance, schema)

    return timed


@lru_cache(maxsize=2)
def _validator_class(client: bool) -> Any:
    """Draft 2020-12 with a deadline on every keyword, linear `uniqueItems`, and RE2
    for a client's patterns."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    keywords: dict[str, Keyword] = {**base.VALIDATORS, "uniqueItems": _unique_items}
    if client:
        keywords.update(_re2_keywords())
    timed = {name: _timed(keyword) for name, keyword in keywords.items()}
    return jsonschema.validators.extend(base, timed)  # type: ignore[no-untyped-call]


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
    import jsonschema

    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[str] = set()
    for item in instance:
        key = json.dumps(_normalised(item), sort_keys=True)
        if key in seen:
            yield jsonschema.ValidationError(f"{key[:100]} appears more than once")
            return
        seen.add(key)


def _normalised(value: Any) -> Any:
    """JSON Schema equality: 1 and 1.0 are equal, true and 1 are not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    return value


def _re2_keywords() -> dict[str, Keyword]:
    import jsonschema

    def pattern(validator: Any, regex: str, instance: Any, schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not compiled_pattern(regex).search(instance):
            yield jsonschema.ValidationError(f"{instance[:100]!r} does not match {regex!r}")

    def pattern_properties(
        validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
    ) -> Iterator[Any]:
        if not validator.is_type(instance, "object"):
            return
        for regex, subschema in patterns.items():
            for key, value in instance.items():
                _check_time()  # patterns x keys: one keyword call, possibly long
                if compiled_pattern(regex).search(key):
                    yield from validator.descend(value, subschema, path=key, schema_path=regex)

    def additional_properties(
        validator: Any, additional: Any, instance: Any, schema: Any
    ) -> Iterator[Any]:
        # jsonschema's own joins the patternProperties regexes and runs them with `re`.
        if not validator.is_type(instance, "object"):
            return
        declared = schema.get("properties", {})
        patterns = [compiled_pattern(regex) for regex in schema.get("patternProperties", {})]
        extras = []
        for key in instance:
            _check_time()
            if key not in declared and not any(p.search(key) for p in patterns):
                extras.append(key)
        if validator.is_type(additional, "object"):
            for key in extras:
                yield from validator.descend(instance[key], additional, path=key)
        elif additional is False and extras:
            listed = ", ".join(repr(key[:40]) for key in sorted(extras)[:5])
            yield jsonschema.ValidationError(f"additional properties are not allowed: {listed}")

    return {
        "pattern": pattern,
        "patternProperties": pattern_properties,
        "additionalProperties": additional_properties,
    }
