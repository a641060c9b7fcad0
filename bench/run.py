"""`python -m bench.run [--quick]`: every benchmark figure of TARGETS.md's P1, P5-P8,
printed as measured and written to bench/RESULTS.md with the machine it ran on.

Nothing in the report is typed by hand: each figure, the date and the machine facts come
from measurements and commands run here. `--quick` runs reduced sizes as a smoke check;
it and `--only` (a part of the figures) write a report only when `--output` is given, so
neither overwrites the whole results.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import (
    cache_bench,
    engine_bench,
    executor_bench,
    gitsync_bench,
    kfp_bench,
    operator_bench,
    recurring_bench,
    ui_bench,
    validate_bench,
    webhook_bench,
)
from bench.figures import Figure, Section

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> list[tuple[str, str]]:
    """Facts about where the figures were measured, each read from the system."""
    cpu = "unknown"
    with Path("/proc/cpuinfo").open() as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    free = _command(["free", "-h"])
    for line in free.splitlines():
        if line.startswith("Mem:"):
            memory = line.split()[1]
    return [
        ("date (date -u)", _command(["date", "-u"])),
        ("CPUs (nproc)", _command(["nproc"])),
        ("memory (free -h, total)", memory),
        ("CPU model", cpu),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("kernel", platform.release()),
    ]


def _command(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.stdout.strip() or f"({argv[0]} failed: {done.stderr.strip()})"


def _value(figure: Figure) -> str:
    if figure.value >= 100:
        return f"{figure.value:,.0f} {figure.unit}"
    return f"{figure.value:.3g} {figure.unit}"


def _verdict(figure: Figure) -> str:
    if figure.met is None:
        return ""
    return ("met" if figure.met else "**missed**") + f" ({figure.margin})"


def render(
    facts: list[tuple[str, str]], sections: Sequence[Section], argv: list[str], wall: float
) -> str:
    lines = [
        "# pipesync benchmark results",
        "",
        f"Written by `python -m bench.run {' '.join(argv)}`".rstrip() + f" in {wall:.0f} s. "
        "Every number below was measured by that run; see bench/README.md for method.",
        "Timings are the best of the repeats (the least disturbed run on a shared machine); "
        "medians are in the notes.",
        "",
        "## Machine",
        "",
        *[f"- {name}: {value}" for name, value in facts],
        "",
        "## Targets",
        "",
        "| figure | value | target | verdict |",
        "|---|---|---|---|",
    ]
    for section in sections:
        for figure in section.figures:
            if figure.target:
                lines.append(
                    f"| {figure.name} | {_value(figure)} | {figure.target} | {_verdict(figure)} |"
                )
    for section in sections:
        lines += ["", f"## {section.title}", "", "| figure | value | notes |", "|---|---|---|"]
        for figure in section.figures:
            note = figure.note.replace("|", "\\|")
            lines.append(f"| {figure.name} | {_value(figure)} | {note} |")
        for title, profile in section.profiles.items():
            lines += ["", f"### Profile: {title}", "", "```", *profile, "```"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (a smoke check)")
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the report (default: bench/RESULTS.md; nowhere with --quick "
        "or --only)",
    )
    parser.add_argument(
        "--only",
        choices=(
            "validate",
            "engine",
            "executor",
            "operator",
            "operator-memory",
            "webhook",
            "gitsync",
            "recurring",
            "kfp",
            "ui",
            "cache",
        ),
        action="append",
        help="run only these benchmarks (repeatable)",
    )
    options = parser.parse_args(argv)
    output = options.output or (None if options.quick or options.only else RESULTS)
    started = time.perf_counter()
    facts = machine()
    for name, value in facts:
        print(f"{name}: {value}")
    sections = []
    for key, measure in (
        ("validate", validate_bench.measure),
        ("engine", engine_bench.measure),
        ("executor", executor_bench.measure),
        ("operator", operator_bench.measure),
        # P7 alone (also part of "operator"), when only the memory figure is wanted.
        ("operator-memory", operator_bench.measure_memory),
        ("webhook", webhook_bench.measure),
        ("gitsync", gitsync_bench.measure),
        ("recurring", recurring_bench.measure),
        ("kfp", kfp_bench.measure),
        ("ui", ui_bench.measure),
        ("cache", cache_bench.measure),
    ):
        if key == "operator-memory" and "operator-memory" not in (options.only or ()):
            continue
        if options.only and key not in options.only:
            continue
        print(f"\n== {key} ==", flush=True)
        section = measure(options.quick, lambda text: print(text, flush=True))
        sections.append(section)
        for figure in section.figures:
            verdict = _verdict(figure)
            print(
                f"  {figure.name}: {_value(figure)}"
                + (f"  [{figure.target}: {verdict}]" if verdict else "")
            )
        for title, profile in section.profiles.items():
            print(f"  profile: {title}")
            for line in profile:
                print(f"    {line}")
    wall = time.perf_counter() - started
    if output is not None:
        shown = list(argv if argv is not None else sys.argv[1:])
        output.write_text(render(facts, sections, shown, wall))
        print(f"\nwrote {output}")
    judged = [f for s in sections for f in s.figures if f.met is not None]
    missed = [f for f in judged if not f.met]
    print(f"{len(missed)} of {len(judged)} target figure(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
