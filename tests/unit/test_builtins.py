"""The calculator bounds its work before doing it (abuse: numbers that grow without end)."""

from __future__ import annotations

import pytest

from orchestrator_server.tools.builtins import MAX_RESULT_BITS, CalculatorError, evaluate

TEN_FACTORS = "*".join(["2**999"] * 10)  # 9,990 bits: just under the limit


@pytest.mark.parametrize(
    "expression", ["((9**999)**999)**20", "(9**999)**999", f"{TEN_FACTORS}*2**999"]
)
def test_results_beyond_the_bit_limit_are_refused_before_they_are_computed(
    expression: str,
) -> None:
    with pytest.raises(CalculatorError, match="bits"):
        evaluate(expression)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2**100", 2**100),
        ("9**999 % 1000", 9**999 % 1000),
        ("(2 + 3) * 4", 20),
        ("1**1000", 1),
        (TEN_FACTORS, 2**9990),
    ],
)
def test_ordinary_arithmetic_still_works(expression: str, value: int) -> None:
    assert evaluate(expression) == value


def test_the_limit_is_the_documented_one() -> None:
    assert MAX_RESULT_BITS == 10_000
