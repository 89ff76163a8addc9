"""Progress lines for long loops: how many items are done (of how many, when known), the rate, and the
time left, logged at most every `every` seconds, so a stage over a large source shows it is moving."""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
EVERY = 10.0  # seconds between two lines


class Progress:
    """Counts done items and logs a line whenever `every` seconds have passed since the last one."""

    def __init__(self, what: str, total: int | None = None, every: float | None = None,
                 logger: logging.Logger | None = None, clock: Callable[[], float] = time.monotonic):
        self.what, self.total, self.clock = what, total, clock
        self.every = EVERY if every is None else every
        self.log = logger or logging.getLogger(__name__)
        self.done = 0
        self.started = self.last = clock()

    def step(self, count: int = 1) -> None:
        self.done += count
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """`what: done / total (percent), rate/s, time left` (without total: done and rate)."""
        elapsed = max((self.clock() if now is None else now) - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            left = (self.total - self.done) / rate if rate else float("inf")
            return (f"{self.what}: {self.done} / {self.total} ({100 * self.done / self.total:.0f}%), "
                    f"{rate:.1f}/s, {_duration(left)} left")
        return f"{self.what}: {self.done} done, {rate:.1f}/s"

    def track(self, items: Iterable[T]) -> Iterator[T]:
        """`items`, counting each one as it passes."""
        for item in items:
            yield item
            self.step()


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "unknown time"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
