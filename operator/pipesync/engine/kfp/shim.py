"""The runtime shim that runs a KFP lightweight Python component inside a pipesync task.

A lightweight component's generated command pip-installs kfp, writes the function's
source to a temporary module and runs `kfp.dsl.executor_main` with the executor input
JSON (`{{$}}`). pipesync cannot render `{{$}}` into one argv element safely (values
would be pasted into JSON text), so the reader replaces the whole command with

    python3 -c SHIM SPEC VALUE...

where SPEC is static JSON (function name, source, and one slot per input/output) and
each VALUE is one argv element holding a pipesync placeholder (`{{params.x}}`,
`{{inputs.artifacts.d}}`, `{{outputs.parameters.Output}}`...). The shim, running in the
task's own python3 (the venv locally, the user's image in a pod, both with kfp), types
each value back, builds the executor input, runs the executor in-process (no pip
install, no second interpreter) and turns executor_output.json into pipesync outputs:
parameter files and, for artifact metadata, a hidden `kfp-meta-<name>` output parameter.

A container whose command or args hold `{{$}}` itself (a containerized Python component
built with `kfp component build`, or any program reading the executor input) goes through
the same shim in its "argv" mode: the container's argv follows the slot values, each `{{$}}`
marked by EXECUTOR_INPUT; the shim puts the executor input JSON there, runs the program as
a child process (no shell) and reads executor_output.json the same way. The image needs
python3.

This module only holds text and pure helpers; it does no I/O itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

#: Prefix of the hidden output parameter carrying an output artifact's KFP metadata.
META_PREFIX = "kfp-meta-"

#: Stand for `{{$}}` and `{{$.outputs.output_file}}` in a container's argv until the shim
#: puts the executor input and the executor output file's path there.
EXECUTOR_INPUT = "__pipesync_kfp_executor_input__"
OUTPUT_FILE = "__pipesync_kfp_output_file__"

#: The program run by `python3 -c`. Kept dependency-free apart from kfp itself.
PROGRAM = r"""
import atexit, base64, json, os, shutil, subprocess, sys, tempfile
spec = json.loads(sys.argv[1])
count = len(spec["slots"])
values, argv = sys.argv[2:2 + count], sys.argv[2 + count:]
def typed(text, kind):
    if kind == "NUMBER_INTEGER":
        return int(float(text))
    if kind == "NUMBER_DOUBLE":
        return float(text)
    if kind == "BOOLEAN":
        return text.strip().lower() in ("true", "1")
    if kind in ("LIST", "STRUCT"):
        return json.loads(text) if text.strip() else ([] if kind == "LIST" else {})
    return text
def shown(value):
    if isinstance(value, str):
        return value
    return json.dumps(value)
def meta(text):
    try:
        found = json.loads(text) if text else {}
    except ValueError:
        found = {}
    return found
work = tempfile.mkdtemp(prefix="kfp-")
atexit.register(shutil.rmtree, work, True)
inputs = {"parameterValues": {}, "artifacts": {}}
outputs = {"parameters": {}, "artifacts": {},
           "outputFile": os.path.join(work, "executor_output.json")}
out_params, out_artifacts = {}, {}
for slot, text in zip(spec["slots"], values):
    kind, name = slot["k"], slot["n"]
    if kind == "param":
        inputs["parameterValues"][name] = typed(text, slot["t"])
    elif kind == "status":
        state = {"Succeeded": "SUCCEEDED", "Failed": "FAILED", "Cancelled": "CANCELLED"}
        inputs["parameterValues"][name] = {
            "state": state.get(text, text.upper()),
            "pipelineJobResourceName": os.environ.get("PIPESYNC_RUN", ""),
            "pipelineTaskName": slot.get("g", ""),
            "error": {} if text == "Succeeded" else {"code": 1, "message": "a task failed"},
        }
    elif kind == "artifact":
        inputs["artifacts"][name] = {"artifacts": [
            {"name": name, "type": {"schemaTitle": slot["s"]}, "uri": text, "metadata": {}}]}
    elif kind == "artifact-meta":
        for artifact in inputs["artifacts"][name]["artifacts"]:
            artifact["metadata"] = meta(text)
    elif kind == "artifact-list":
        entries = sorted(os.listdir(text), key=int) if os.path.isdir(text) else []
        inputs["artifacts"][name] = {"artifacts": [
            {"name": name, "type": {"schemaTitle": slot["s"]}, "uri": os.path.join(text, entry),
             "metadata": {}} for entry in entries]}
    elif kind == "artifact-list-meta":
        metas = meta(text) if text else []
        for artifact, found in zip(inputs["artifacts"][name]["artifacts"], metas):
            artifact["metadata"] = meta(found) if isinstance(found, str) else (found or {})
    elif kind == "out-param":
        outputs["parameters"][name] = {"outputFile": text}
        out_params[name] = text
    elif kind == "out-artifact":
        outputs["artifacts"][name] = {"artifacts": [
            {"name": name, "type": {"schemaTitle": slot["s"]}, "uri": text, "metadata": {}}]}
        out_artifacts[name] = text
    elif kind == "out-meta":
        out_artifacts[name + "\0meta"] = text
executor_input = json.dumps({"inputs": inputs, "outputs": outputs})
if spec.get("argv"):
    marker, output_marker = spec["argv"]
    code = subprocess.call([arg.replace(marker, executor_input)
                            .replace(output_marker, outputs["outputFile"]) for arg in argv])
    if code:
        sys.exit(code)
else:
    module = os.path.join(work, "ephemeral_component.py")
    with open(module, "w") as handle:
        handle.write(base64.b64decode(spec["source"]).decode("utf-8"))
    os.environ["_KFP_RUNTIME"] = "true"
    sys.argv = ["executor_main", "--component_module_path", module,
                "--executor_input", executor_input, "--function_to_execute", spec["function"]]
    from kfp.dsl import executor_main
    executor_main.executor_main()
result = {}
if os.path.exists(outputs["outputFile"]):
    with open(outputs["outputFile"]) as handle:
        result = json.load(handle)
for name, value in result.get("parameterValues", {}).items():
    if name in out_params:
        with open(out_params[name], "w") as handle:
            handle.write(shown(value))
for name, path in out_params.items():
    if not os.path.exists(path):
        sys.exit("kfp component did not produce output parameter %r" % name)
for name, path in list(out_artifacts.items()):
    if name.endswith("\0meta"):
        continue
    if not os.path.exists(path):
        open(path, "w").close()
    produced = result.get("artifacts", {}).get(name, {}).get("artifacts", [{}])
    metadata = produced[0].get("metadata", {}) if produced else {}
    target = out_artifacts.get(name + "\0meta")
    if target:
        with open(target, "w") as handle:
            handle.write(json.dumps(metadata))
"""


def argv(function: str, source: str, slots: Sequence[dict[str, Any]]) -> list[str]:
    """The task's command: the shim, its static spec, then one placeholder per slot.

    Each slot dict carries `v` (the placeholder text, one argv element) besides the
    static fields the shim reads (`k` kind, `n` name, `t` type, `s` schema title)."""
    # base64: component sources may hold `{{`, which pipesync's templating would claim.
    encoded = base64.b64encode(source.encode("utf-8")).decode("ascii")
    spec = json.dumps({"function": function, "source": encoded, "slots": _static(slots)})
    return ["python3", "-c", PROGRAM, spec, *(str(slot["v"]) for slot in slots)]


def container_argv(argv: Sequence[str], slots: Sequence[dict[str, Any]]) -> list[str]:
    """The command for a container that reads `{{$}}`: the shim, its spec, the slot
    values, then the container's own argv (pipesync templates, EXECUTOR_INPUT for `{{$}}`)."""
    spec = json.dumps({"argv": [EXECUTOR_INPUT, OUTPUT_FILE], "slots": _static(slots)})
    return ["python3", "-c", PROGRAM, spec, *(str(slot["v"]) for slot in slots), *argv]


def _static(slots: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in slot.items() if key != "v"} for slot in slots]
