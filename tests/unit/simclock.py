"""An asyncio event loop on a simulated clock, as kopf tests its daemons (looptime): when
nothing is ready to run, the loop jumps its clock to the next timer instead of sleeping,
so a test of a 60 s backoff takes microseconds and sees exact times.

Only for code that waits on the loop's own timers and events: work in threads would run
on the real clock while the simulated one jumps ahead.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class _FastForwardSelector(selectors.DefaultSelector):
    """Never blocks: a wait of `timeout` seconds with nothing ready moves the clock."""

    def __init__(self, loop: SimulatedLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready and timeout is not None and timeout > 0:
            self._loop.now += timeout
        elif not ready and timeout is None:
            raise RuntimeError("the loop would wait forever: nothing is scheduled")
        return ready

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return super().get_map()


class SimulatedLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(selector=_FastForwardSelector(self))

    def time(self) -> float:
        return self.now


def run(main: Coroutine[Any, Any, T]) -> T:
    """Runs `main` on a fresh simulated loop; fails if it leaves tasks behind (as kopf's
    test suite does), since a leaked task would keep a daemon alive in the operator."""
    loop = SimulatedLoop()
    try:
        result = loop.run_until_complete(main)
        left = [task for task in asyncio.all_tasks(loop) if not task.done()]
        assert not left, f"tasks left behind: {left}"
        return result
    finally:
        loop.close()
