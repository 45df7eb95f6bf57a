"""Explains an event-loop stall: a thread samples the loop thread's stack every few
milliseconds, and a run of samples outside the selector's wait is a busy period whose
most frequent stack is reported. Without it, a failing lag bound says only "how long"."""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from types import FrameType

SAMPLE_INTERVAL_SECONDS = 0.004
STACK_DEPTH = 8
# The loop thread is idle while it waits in the selector's select()/poll().
IDLE_FUNCTIONS = frozenset({"select", "poll"})


@dataclass
class BusyPeriod:
    """A stretch of time the loop thread spent outside its selector."""

    seconds: float
    stacks: Counter[str] = field(default_factory=Counter)

    def describe(self) -> str:
        stack, count = self.stacks.most_common(1)[0]
        return f"busy {self.seconds * 1000:.0f} ms, {count} samples in:\n{stack}"


class StallSampler:
    """Samples one thread's stack while started; keeps its busy periods over `threshold`."""

    def __init__(self, threshold_seconds: float) -> None:
        self._thread_id = threading.get_ident()
        self._threshold = threshold_seconds
        self._stopping = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="stall sampler", daemon=True)
        self.periods: list[BusyPeriod] = []

    def start(self) -> None:
        self._sampler.start()

    def stop(self) -> None:
        self._stopping.set()
        self._sampler.join()

    def worst(self) -> str:
        """The longest busy period, described; empty if there was none."""
        if not self.periods:
            return ""
        return max(self.periods, key=lambda p: p.seconds).describe()

    def _sample(self) -> None:
        began: float | None = None
        stacks: Counter[str] = Counter()
        while not self._stopping.wait(SAMPLE_INTERVAL_SECONDS):
            frame = sys._current_frames().get(self._thread_id)
            now = time.monotonic()
            if frame is None or frame.f_code.co_name in IDLE_FUNCTIONS:
                if began is not None and now - began > self._threshold:
                    self.periods.append(BusyPeriod(now - began, stacks))
                began, stacks = None, Counter()
                continue
            began = now if began is None else began
            stacks[_innermost(frame)] += 1


def _innermost(frame: FrameType) -> str:
    return "".join(traceback.format_stack(frame)[-STACK_DEPTH:])
