"""JSON Schema patterns are ECMA-262 regular expressions; RE2 runs them in linear time
once the syntax and classes where the two differ are rewritten:
  * `\\uXXXX`, `\\u{X...}` and `\\cX` escapes (RE2 refuses them) become `\\x{...}`;
  * `\\s` / `\\S` are ECMA's white space (RE2's lacks no-break and Unicode spaces);
  * `.` outside a class excludes every ECMA line terminator (RE2's excludes only `\\n`);
  * classes end at the first unescaped `]` (`[]` matches nothing, `[^]` anything) and
    read `[` as a character; surrogate-pair escapes are one character.
Inside a class `\\S` keeps RE2's meaning (it differs on Unicode spaces only).
Anything RE2 cannot run (look-around, back-references) is still refused by RE2.
"""

from __future__ import annotations

import re

_SPACE = (
    r"\t\n\v\f\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
    r"\x{feff}"
)
_ANY_BUT_LINE_END = r"[^\n\r\x{2028}\x{2029}]"
_NOTHING = r"[^\x{0}-\x{10ffff}]"
_ANYTHING = r"[\x{0}-\x{10ffff}]"
_LOW_SURROGATE = re.compile(r"\\u([Dd][C-Fc-f][0-9A-Fa-f]{2})")
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
        if not in_class and char == "[":
            text, i, in_class = _class_start(pattern, i)
            out.append(text)
            continue
        if in_class:
            # ECMA ends a class at the first unescaped "]" and reads "[" inside one as a
            # character (RE2 would read "[:digit:]" as a POSIX class).
            in_class = char != "]"
            out.append("\\[" if char == "[" else char)
        else:
            out.append(_ANY_BUT_LINE_END if char == "." else char)
        i += 1
    return "".join(out)


def _class_start(pattern: str, at: int) -> tuple[str, int, bool]:
    """The RE2 text of a class opening at `at`, the index after it, and whether the
    class is still open. ECMA's `[]` matches nothing and `[^]` any character."""
    if pattern.startswith("[]", at):
        return _NOTHING, at + 2, False
    if pattern.startswith("[^]", at):
        return _ANYTHING, at + 3, False
    if pattern.startswith("[^", at):
        return "[^", at + 2, True
    return "[", at + 1, True


def _escape(pattern: str, at: int, in_class: bool) -> tuple[str, int]:
    """The RE2 text of the escape whose letter is at `at`, and the index after it."""
    letter = pattern[at]
    unicode = _UNICODE_ESCAPE.match(pattern, at)
    if unicode is not None:
        hex_digits, braced, control = unicode.groups()
        code = ord(control.upper()) % 32 if control else int(hex_digits or braced, 16)
        end = unicode.end()
        low = _LOW_SURROGATE.match(pattern, end)
        if 0xD800 <= code <= 0xDBFF and low is not None:  # a surrogate pair: one character
            code = 0x10000 + ((code - 0xD800) << 10) + (int(low.group(1), 16) - 0xDC00)
            end = low.end()
        return f"\\x{{{code:x}}}", end
    if letter in "sS" and in_class and _next_to_dash(pattern, at):
        # A class escape cannot end a range (a syntax error in ECMA's unicode mode);
        # spliced in, the space list would make a range of its own last character.
        raise ValueError(f"\\{letter} cannot be a range endpoint in a character class")
    if letter == "s":
        return (_SPACE if in_class else f"[{_SPACE}]"), at + 1
    if letter == "S" and not in_class:
        return f"[^{_SPACE}]", at + 1
    return "\\" + letter, at + 1


def _next_to_dash(pattern: str, at: int) -> bool:
    """Whether the class escape whose letter is at `at` has a range dash beside it."""
    dash_before = at >= 2 and pattern[at - 2] == "-"
    # ... unless that dash opens the class, where it is a character.
    if dash_before and (pattern[at - 3 : at - 2] == "[" or pattern[at - 4 : at - 2] == "[^"):
        dash_before = False
    after = pattern[at + 1 : at + 3]
    return dash_before or (after.startswith("-") and after != "-]")
