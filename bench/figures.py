"""What every bench module hands back: measured figures, and profiles of missed targets.

Kept apart from `bench.run` so the bench modules and the entry point do not import each
other. Nothing here holds a number: every value is filled in by a measurement.
"""

from __future__ import annotations

import cProfile
import dataclasses
import io
import pstats
import statistics
import time
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Figure:
    """One measured figure; `target` set when TARGETS.md gives it one."""

    section: str
    name: str
    value: float
    unit: str
    target: str = ""  # e.g. "P8: >= 500 files/s"
    met: bool | None = None  # None when the figure has no target (context only)
    margin: str = ""  # how far from the target, in words
    note: str = ""


@dataclasses.dataclass
class Section:
    """What one bench module measured: figures, plus profiles where they explain a miss."""

    title: str
    figures: list[Figure] = dataclasses.field(default_factory=list)
    profiles: dict[str, list[str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Timing:
    """Repeated wall-clock timings of one thing, in seconds."""

    samples: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def describe(self) -> str:
        return (
            f"best {self.best * 1000:.1f} ms, median {self.median * 1000:.1f} ms "
            f"of {len(self.samples)}"
        )


def timed(action: Callable[[], object], repeats: int) -> Timing:
    """Wall-clock time of `action`, `repeats` times (best is the least disturbed run)."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return Timing(tuple(samples))


def hotspots(action: Callable[[], object], *, limit: int = 10, only: str = "") -> list[str]:
    """The functions where `action` spends its time (main thread only: cProfile's reach).

    Two views: own time (what to optimise inside) and cumulative time of functions whose
    file path contains `only` (which entry points of the product carry the cost).
    """
    profiler = cProfile.Profile()
    profiler.enable()
    action()
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    raw = stats.stats  # type: ignore[attr-defined]  # documented pstats internals
    total = sum(entry[2] for entry in raw.values()) or 1e-9  # own times add up to the total
    rows = []
    for (file, line, function), (_, calls, own, cumulative, _) in raw.items():
        rows.append((own, cumulative, calls, f"{_short(file)}:{line}:{function}"))
    lines = [f"total profiled time {total * 1000:.0f} ms (cProfile overhead included)"]
    lines.append("own time:")
    for own, _, calls, where in sorted(rows, reverse=True)[:limit]:
        lines.append(f"  {own / total:6.1%}  {where}  ({calls} calls)")
    if only:
        lines.append(f"cumulative time, functions under {only!r}:")
        chosen = sorted((r for r in rows if only in r[3]), key=lambda r: r[1], reverse=True)
        for _, cumulative, calls, where in chosen[:limit]:
            lines.append(f"  {cumulative / total:6.1%}  {where}  ({calls} calls)")
    return lines


def _short(file: str) -> str:
    for marker in ("/pipesync/", "/site-packages/", "/lib/python3"):
        position = file.find(marker)
        if position >= 0:
            return file[position + 1 :]
    return file
