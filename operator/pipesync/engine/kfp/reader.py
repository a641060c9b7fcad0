"""A KFP v2 pipeline (the SDK's compiled "IR" YAML) as a pipesync Pipeline document.

The IR nests sub-DAGs for conditions, loops, exit handlers and pipelines used as
components; pipesync runs a flat DAG. The reader flattens: each container task becomes
one pipesync task, group conditions become its `when`, a loop becomes its `forEach`,
the exit handler's task becomes `onExit`, DAG outputs are followed to the task that
produces them. The result is an ordinary Pipeline body, so the same schema, compiler,
planner, local executor and operator run it; its positions point into the KFP file.

What pipesync cannot run is reported with the place in the KFP file, all at once.

The work is split along the IR's seams, each module one job, all sharing one
`state.Translation`: parameters and artifacts (parameters.py), the DAGs and their
dependencies (dag.py, outputs.py), loops (loops.py), conditions (conditions.py), where a
task sits (placement.py), container and importer tasks (containers.py, executors.py,
commands.py, importer.py, shim.py, platform.py). Values travel as `templating`
references (placeholders.py); their text is written only into the body.
"""

from __future__ import annotations

from typing import Any

from pipesync.api import conventions, model
from pipesync.engine.kfp import dag, loops, parameters
from pipesync.engine.kfp.state import Context, Translation, dns, mapping

#: What a value of the wrong type in the IR raises while it is read; `translate` reports
#: it at the place being read (`Reader.here`) instead of letting it escape.
SHAPE_ERRORS = (TypeError, AttributeError, ValueError, KeyError, IndexError)


class Reader(Translation):
    """One KFP document (and its optional platform document) to a Pipeline body."""

    def pipeline(self) -> dict[str, Any]:
        info = mapping(self.data.get("pipelineInfo"))
        raw_name = str(info.get("name", "kfp-pipeline"))
        name = dns(raw_name) or "kfp-pipeline"
        self.place(("metadata", "name"), ("pipelineInfo", "name"))
        self.place((), ())
        root = mapping(self.data.get("root"))
        spec: dict[str, Any] = {}
        if info.get("description") or info.get("displayName"):
            spec["description"] = str(info.get("description") or info.get("displayName"))
        params = parameters.pipeline_params(self, root)
        scope = parameters.pipeline_scope(self, root, params)
        if params:
            spec["params"] = params
        if "dag" not in root:
            self.problem(("root",), "root has no dag")
        else:
            dag.walk(self, ("root", "dag"), scope, Context(), root_level=True)
        loops.nest(self)
        spec["tasks"] = self.tasks
        if self.on_exit is not None:
            spec["onExit"] = self.on_exit
        return {
            "apiVersion": model.API_VERSION,
            "kind": "Pipeline",
            "metadata": {
                "name": name,
                "annotations": {
                    conventions.ANNOTATION_FORMAT: "kfp-ir",
                    conventions.ANNOTATION_KFP_PIPELINE_NAME: raw_name,
                },
            },
            "spec": spec,
        }
