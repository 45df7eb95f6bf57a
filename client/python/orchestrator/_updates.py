"""Partial updates (AIP-134): `UNSET`, and the changed fields written with their FieldMask.

`update_agent` and `update_team` take every field as a keyword defaulting to UNSET; the
ones passed are written into the resource message, and their paths into the request's
`update_mask`, so the server changes those and only those.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

from google.protobuf import field_mask_pb2
from google.protobuf.message import Message as ProtoMessage

from . import types as t
from ._convert import model_to_pb

V = TypeVar("V")
W = TypeVar("W")


class _Unset(enum.Enum):
    UNSET = "UNSET"


UNSET: Final = _Unset.UNSET
"""Marks an `update_agent` or `update_team` field that is not being changed."""


def unless_unset(value: V | _Unset, convert: Callable[[V], W]) -> W | _Unset:
    """`convert(value)`, or UNSET for UNSET."""
    return value if isinstance(value, _Unset) else convert(value)


def model_change(model: t.Model | str | _Unset) -> dict[str, object]:
    """The update of `update_agent(model=...)`: a str changes only the model's name."""
    if isinstance(model, _Unset):
        return {}
    if isinstance(model, str):
        return {"model.model": model}
    return {"model": model_to_pb(model)}


def apply_changes(
    resource: ProtoMessage, mask: field_mask_pb2.FieldMask, changes: Mapping[str, object]
) -> None:
    """Write the changes that are not UNSET into `resource`, and their paths into `mask`.

    Keys are field paths ("model.model"); messages are copied, mappings merged into map
    fields, other iterables (but str) appended to repeated fields, the rest assigned.
    """
    # Sent even when empty, so that the server, not this client, judges an empty update.
    mask.SetInParent()
    for path, value in changes.items():
        if isinstance(value, _Unset):
            continue
        *parents, name = path.split(".")
        target: Any = resource
        for parent in parents:
            target = getattr(target, parent)
        if isinstance(value, ProtoMessage):
            getattr(target, name).CopyFrom(value)
        elif isinstance(value, Mapping):
            getattr(target, name).update(value)
        elif isinstance(value, Iterable) and not isinstance(value, str):
            getattr(target, name).extend(value)
        else:
            setattr(target, name, value)
        mask.paths.append(path)
