"""JSON Schema patterns are ECMA-262 regular expressions; RE2 runs them in linear time
once the syntax and classes where the two differ are rewritten:
  * `\\uXXXX`, `\\u{X...}` and `\\cX` escapes (RE2 refuses them) become `\\x{...}`;
  * `\\s` / `\\S` are ECMA's white space (RE2's lacks no-break and Unicode spaces);
  * `.` outside a class excludes every ECMA line terminator (RE2's excludes only `\\n`).
Anything RE2 cannot run (look-around, back-references) is still refused by RE2.
"""

from __future__ import annotations

import re

_SPACE = (
    r"\t\n\v\f\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
    r"\x{feff}"
)
_ANY_BUT_LINE_END = r"[^\n\r\x{2028}\x{2029}]"
_UNICODE_ESCAPE = re.compile(r"u([0-9A-Fa-f]{4})|u\{([0-9A-Fa-f]{1,6})\}|c([A-Za-z])")


def ecma_to_re2(pattern: str) -> str:
    """`pattern` in RE2 syntax with ECMA-262 meaning."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            text, i = _escape(pattern, i + 1, in_class)
            out.append(text)
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class and out and out[-1] not in ("[", "[^"):
            in_class = False
        elif char == "^" and in_class and out and out[-1] == "[":
            out[-1] = "[^"
            i += 1
            continue
        out.append(_ANY_BUT_LINE_END if char == "." and not in_class else char)
        i += 1
    return "".join(out)


def _escape(pattern: str, at: int, in_class: bool) -> tuple[str, int]:
    """The RE2 text of the escape whose letter is at `at`, and the index after it."""
    letter = pattern[at]
    unicode = _UNICODE_ESCAPE.match(pattern, at)
    if unicode is not None:
        hex_digits, braced, control = unicode.groups()
        code = ord(control.upper()) % 32 if control else int(hex_digits or braced, 16)
        return f"\\x{{{code:x}}}", unicode.end()
    if letter == "s":
        return (_SPACE if in_class else f"[{_SPACE}]"), at + 1
    if letter == "S" and not in_class:
        return f"[^{_SPACE}]", at + 1
    return "\\" + letter, at + 1
