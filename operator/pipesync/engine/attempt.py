"""What one task attempt runs, the same in both executors: its argv and environment with
every placeholder rendered, and its working directory relative to the task's root.

The operator's pod builder (runtime/pods.py) and the local executor (runtime/local.py)
differ only in where files are (a volume in a pod, a work directory on a laptop) and in
what the root is (the workspace volume, the repository checkout): they pass those in. So
a task field that changes what a task runs (its argv, env or working directory) is read
here once, not in each executor; so are its resources when a placeholder gives them
(`resources`, raising engine.resources.ResourceError for a value no pod can be given).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from pipesync.api.model import Resources
from pipesync.engine import resources as task_resources
from pipesync.engine.planner import Launch
from pipesync.engine.templating import FILE_KINDS, Ref, RefKind

#: Where an executor keeps the file a placeholder names: (kind, name) -> its path.
PathOf = Callable[[RefKind, str], str]


@dataclasses.dataclass(frozen=True)
class Program:
    argv: tuple[str, ...]
    #: The task's own env, then what pipesync tells every task (PIPESYNC_RUN, ...).
    env: Mapping[str, str]
    #: Relative to the executor's task root; "" for the root itself.
    working_dir: str


def program(launch: Launch, *, run: str, namespace: str, path_of: PathOf) -> Program:
    compiled = launch.task

    def resolve(ref: Ref) -> str:
        if ref.kind in FILE_KINDS:
            return path_of(ref.kind, ref.name)
        return launch.resolve(ref)

    env = {name: template.render(resolve) for name, template in compiled.env}
    env.update(
        {
            "PIPESYNC_RUN": run,
            "PIPESYNC_NAMESPACE": namespace,
            "PIPESYNC_TASK": compiled.name,
            "PIPESYNC_ATTEMPT": str(launch.attempt),
        }
    )
    if launch.has_item:
        env["PIPESYNC_ITEM_INDEX"] = str(launch.key[1])
    return Program(
        argv=tuple(template.render(resolve) for template in compiled.argv),
        env=env,
        working_dir=compiled.task.working_dir or "",
    )


def resources(launch: Launch) -> Resources:
    """The attempt's resources: the task's, with fields written as placeholders rendered
    from the values the launch carries (resources never name files)."""
    compiled = launch.task
    rendered = {field: template.render(launch.resolve) for field, template in compiled.resources}
    return task_resources.resolve(compiled.task.resources, rendered, compiled.name)
