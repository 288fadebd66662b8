"""A small thread-safe circuit breaker for the HWA client.

closed: calls go through; `failure_threshold` consecutive failures open it.
open: calls fail at once with `HwaCircuitOpen` until `reset_seconds` have passed.
half_open: one trial call is let through; success closes the breaker, failure opens it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerStatus:
    state: BreakerState
    consecutive_failures: int
    opened_at: float | None
    retry_in_seconds: float


class CircuitBreaker:
    def __init__(
        self, *, failure_threshold: int = 5, reset_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    def _current_state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._current_state()

    def status(self) -> BreakerStatus:
        with self._lock:
            state = self._current_state()
            retry_in = 0.0
            if state is BreakerState.OPEN and self._opened_at is not None:
                retry_in = max(0.0, self.reset_seconds - (self._clock() - self._opened_at))
            return BreakerStatus(state, self._failures, self._opened_at, retry_in)

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one trial call at a time may."""
        with self._lock:
            state = self._current_state()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_running = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial_running or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            self._trial_running = False

    def reset(self) -> None:
        self.record_success()
