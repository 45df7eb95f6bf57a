"""Figures (a value per repeat plus secondary metrics), targets, and their statistics."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], pct: int) -> float:
    """The pct-th percentile (inclusive method), NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[pct - 1])


@dataclass
class Figure:
    """One measured figure: its value in each repeat, and secondary metrics per repeat."""

    key: str
    section: str
    label: str
    unit: str
    samples: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""

    @property
    def value(self) -> float:
        return median(self.samples)

    def x(self, name: str) -> float:
        """Median of a secondary metric."""
        return median(self.extra.get(name, []))

    def add_extra(self, name: str, value: float) -> None:
        self.extra.setdefault(name, []).append(value)

    def to_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "label": self.label,
            "unit": self.unit,
            "median": self.value,
            "samples": self.samples,
            "extra_median": {k: median(v) for k, v in self.extra.items()},
            "extra": self.extra,
            "note": self.note,
        }


@dataclass
class Target:
    """A performance target: a measured quantity against a threshold."""

    name: str
    measured: float
    threshold: float
    higher_is_better: bool
    unit: str  # "x" for ratios, else the unit of an absolute figure
    detail: str

    @property
    def status(self) -> str:
        if self.measured != self.measured:  # NaN: not measured
            return "n/a"
        ok = (
            self.measured >= self.threshold
            if self.higher_is_better
            else self.measured <= self.threshold
        )
        return "PASS" if ok else "MISS"

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "status": self.status}


class Results:
    """All figures of the run, by key."""

    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}
        self.skipped: dict[str, str] = {}
        self.profiles: dict[str, str] = {}

    def figure(self, key: str, section: str, label: str, unit: str) -> Figure:
        if key not in self.figures:
            self.figures[key] = Figure(key, section, label, unit)
        return self.figures[key]

    def value(self, key: str) -> float:
        fig = self.figures.get(key)
        return fig.value if fig else float("nan")

    def extra(self, key: str, name: str) -> float:
        fig = self.figures.get(key)
        return fig.x(name) if fig else float("nan")
