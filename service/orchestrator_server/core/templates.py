"""Message templates of pipelines and teams: `{name}` placeholders from a fixed set.

Templates are parsed with `string.Formatter` (so `{{` and `}}` are literal braces, as in
Python) but never *formatted* with it: `str.format` would also allow `{0}`, attribute
and index access (`{input.__class__}`) and format specs, which have no use here and
would let a caller probe Python objects. Parsing once at request time also means a bad
template fails the request with a field violation before any agent runs, and values are
inserted verbatim, so braces inside a previous step's output are never re-interpreted.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import InvalidArgumentError, Reason
from .validation import MAX_MESSAGE_CHARS

MAX_TEMPLATE_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: (literal text, placeholder name or "") pairs."""

    parts: tuple[tuple[str, str], ...]
    field: str = "template"

    def size(self, lengths: Mapping[str, int]) -> int:
        """The length of the rendered text for values of these lengths (no rendering)."""
        return sum(len(literal) + (lengths[name] if name else 0) for literal, name in self.parts)

    def check_size(self, lengths: Mapping[str, int]) -> None:
        """REQUEST_TOO_LARGE if the rendered text would exceed a message's limit: a value
        repeated by many placeholders must not be built before it is refused."""
        size = self.size(lengths)
        if size > MAX_MESSAGE_CHARS:
            raise InvalidArgumentError.for_field(
                self.field,
                f"would render {size} characters; a message may have at most {MAX_MESSAGE_CHARS}",
                reason=Reason.REQUEST_TOO_LARGE,
                metadata={"limit": str(MAX_MESSAGE_CHARS), "size": str(size)},
            )

    def render(self, values: Mapping[str, str]) -> str:
        """The text with every placeholder replaced by its value (size checked first)."""
        self.check_size({name: len(value) for name, value in values.items()})
        return "".join(literal + (values[name] if name else "") for literal, name in self.parts)


def parse_template(text: str, allowed: frozenset[str], field: str) -> Template:
    """Parse `text`, allowing only the placeholders in `allowed`; INVALID_ARGUMENT else."""
    names = ", ".join(f"{{{n}}}" for n in sorted(allowed))
    if len(text) > MAX_TEMPLATE_CHARS:
        raise InvalidArgumentError.for_field(
            field, f"must be at most {MAX_TEMPLATE_CHARS} characters"
        )
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as error:
        raise InvalidArgumentError.for_field(
            field, f"is not a valid template ({error}); write '{{{{' and '}}}}' for braces"
        ) from None
    parts: list[tuple[str, str]] = []
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, ""))
            continue
        if name not in allowed:
            raise InvalidArgumentError.for_field(
                field,
                f"unknown placeholder '{{{name[:40]}}}'; the placeholders are {names}, and "
                "'{{' and '}}' are literal braces",
            )
        if spec or conversion:
            raise InvalidArgumentError.for_field(
                field, f"placeholder '{{{name}}}' takes no format spec or conversion"
            )
        parts.append((literal, name))
    return Template(tuple(parts), field)
