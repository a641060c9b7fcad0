"""What program a KFP executor runs: the SDK's lightweight-component launcher, a container
that reads the executor input (`{{$}}`), or a plain container.

The first two run through the runtime shim (shim.py), which also records the metadata
of the artifacts they write; their consumers read it (see parameters.task_outputs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipesync.engine.kfp import commands


def uses_shim(container: Mapping[str, Any]) -> bool:
    """Whether the task runs through the KFP shim (which records artifact metadata)."""
    command = list(container.get("command") or [])
    return lightweight_source(command) is not None or reads_executor_input(container)


def reads_executor_input(container: Mapping[str, Any]) -> bool:
    """Whether the container's command or args hold `{{$}}` (the executor input JSON) or
    `{{$.outputs.output_file}}` (where it writes executor_output.json)."""
    found = [*(container.get("command") or []), *(container.get("args") or [])]
    texts = [item if isinstance(item, str) else json.dumps(item) for item in found]
    return any(marker in text for text in texts for marker in commands.EXECUTOR_FILES)


def lightweight_source(command: list[Any]) -> str | None:
    """The component source when `command` is the SDK's lightweight-component launcher."""
    if (
        len(command) >= 7
        and command[:2] == ["sh", "-c"]
        and command[4] in ("-ec", "-c")
        and "kfp.dsl.executor_main" in str(command[5])
    ):
        return str(command[6])
    return None


def function_name(args: list[Any]) -> str | None:
    """The function a lightweight component runs (`--function_to_execute NAME`)."""
    for position, arg in enumerate(args[:-1]):
        if arg == "--function_to_execute":
            return str(args[position + 1])
    return None
