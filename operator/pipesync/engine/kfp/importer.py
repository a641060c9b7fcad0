"""dsl.importer as a pipesync task: copy the artifact at a URI into the task's output.
A pipeline's input artifacts are imported the same way, from a URI given as a parameter.

KFP's importer is not a container; pipesync runs it as a small python3 program (the
standard library, plus boto3 for s3:// URIs, which pipesync's own image has). The URI is
one argv element (a constant, or a pipeline parameter's placeholder), so nothing from a
user reaches a shell. The importer's metadata goes to the hidden `kfp-meta-artifact`
output parameter, where lightweight consumers read artifact metadata (see shim.py).
Metadata strings holding placeholders (`metadata={"tag": tag}` in the DSL) travel as
extra argv elements; the metadata JSON names them by position (`{"$pipesync-arg": 0}`),
so values are never pasted into JSON text.

This module only holds text and pure helpers; it does no I/O itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipesync.api.yamlsource import Path
from pipesync.engine.kfp import commands, placeholders
from pipesync.engine.kfp import values as v
from pipesync.engine.kfp.placement import place_task
from pipesync.engine.kfp.shim import META_PREFIX
from pipesync.engine.kfp.state import Context, Loop, Site, Translation, dns, mapping
from pipesync.engine.kfp.values import Kind, Value

OUTPUT = "artifact"
#: The URI schemes PROGRAM reads ("": a path), and how messages say so.
SCHEMES = ("", "file", "http", "https", "s3")
SUPPORTED = "a path, file://, http(s):// or s3://"
#: A URI's scheme as urllib.parse.urlsplit finds it (PROGRAM's test), lower-cased there.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")

PROGRAM = r"""
import json, os, shutil, sys, urllib.parse, urllib.request
uri, out, meta_out, metadata = sys.argv[1:5]
values = sys.argv[5:]
def fill(node):
    if isinstance(node, dict) and list(node) == ["$pipesync-arg"]:
        return values[node["$pipesync-arg"]]
    if isinstance(node, dict):
        return {key: fill(item) for key, item in node.items()}
    if isinstance(node, list):
        return [fill(item) for item in node]
    return node
metadata = json.dumps(fill(json.loads(metadata)))
parsed = urllib.parse.urlsplit(uri)
parent = os.path.dirname(out)
if parent:
    os.makedirs(parent, exist_ok=True)
if parsed.scheme in ("", "file"):
    source = urllib.request.url2pathname(parsed.path) if parsed.scheme else uri
    if os.path.isdir(source):
        shutil.copytree(source, out)
    else:
        shutil.copyfile(source, out)
elif parsed.scheme in ("http", "https"):
    with urllib.request.urlopen(uri, timeout=300) as response, open(out, "wb") as handle:
        shutil.copyfileobj(response, handle)
elif parsed.scheme == "s3":
    import boto3
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("PIPESYNC_S3_ENDPOINT")
    client = boto3.client("s3", endpoint_url=endpoint or None)
    client.download_file(parsed.netloc, parsed.path.lstrip("/"), out)
else:
    sys.exit("importer: unsupported URI %r: use file://, a path, http(s):// or s3://" % uri)
with open(meta_out, "w") as handle:
    handle.write(metadata)
print("imported %s" % uri)
"""


def argv(uri: str, metadata: Mapping[str, Any], values: Sequence[str] = ()) -> list[str]:
    """The importer task's command; `uri` and `values` may hold pipesync placeholders,
    `metadata` refers to `values` by position (see `template`)."""
    return [
        "python3",
        "-c",
        PROGRAM,
        uri,
        placeholders.text(placeholders.output_artifact(OUTPUT)),
        placeholders.text(placeholders.output_parameter(META_PREFIX + OUTPUT)),
        json.dumps(dict(metadata)),
        *values,
    ]


def unread_scheme(uri: str) -> str | None:
    """The scheme of a constant URI when PROGRAM cannot read it (`gs`, `oci`), else None.
    A URI with placeholders is known only when the task runs, which PROGRAM then says."""
    found = _SCHEME.match(uri.strip())
    scheme = found.group(1).lower() if found else ""
    return None if scheme in SCHEMES else scheme


def template(metadata: Any, render: Callable[[str], str]) -> tuple[Any, list[str]]:
    """Metadata with each string holding a KFP placeholder replaced by a reference to an
    argv value (`render` turns it into pipesync template text), and those values."""
    values: list[str] = []

    def walk(node: Any) -> Any:
        if isinstance(node, str) and "{{" in node:
            values.append(render(node))
            return {"$pipesync-arg": len(values) - 1}
        if isinstance(node, dict):
            if any("{{" in str(key) for key in node):
                raise ValueError("metadata keys cannot hold placeholders")
            return {key: walk(item) for key, item in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(metadata), values


def input_artifact(
    reading: Translation, name: str, params: list[dict[str, Any]], *, listed: bool
) -> Value:
    """A pipeline input artifact: a required string parameter holding its URI, and an
    importer task (`input-<name>`) that fetches it for the tasks that read it. A list of
    artifacts (`Input[List[Artifact]]`): a JSON list of URIs, imported by a forEach
    whose group a ParallelFor over the artifacts joins."""
    where: Path = ("root", "inputDefinitions", "artifacts", name)
    uri = SUPPORTED
    params.append(
        {
            "name": name,
            "type": "list",
            "description": f"URIs of the input artifacts {name!r}: {uri}",
        }
        if listed
        else {
            "name": name,
            "type": "string",
            "description": f"URI of the input artifact {name!r}: {uri}",
        }
    )
    task = dns(f"input-{name}") or "input-artifact"
    reading.place(("spec", "tasks", len(reading.tasks)), where)
    source = placeholders.item() if listed else placeholders.param(name)
    body: dict[str, Any] = {
        "name": task,
        "command": argv(placeholders.text(source), {}),
        "outputs": _outputs(),
    }
    loop = ""
    if listed:
        loop = task
        items = placeholders.of(placeholders.param(name))
        reading.loops[loop] = Loop(items, None, where, loop)
        body["forEach"] = {"items": placeholders.text(items), "group": loop}
    reading.tasks.append(body)
    return Value(Kind.ARTIFACT, task=task, name=OUTPUT, meta=True, loop=loop)


def importer_task(
    reading: Translation, site: Site, inputs: Mapping[str, Value], context: Context, label: str
) -> str | None:
    """dsl.importer (the executor `label`): a task that copies the artifact at a URI (file,
    http(s) or s3) into its output `artifact`, with the importer's metadata for its
    consumers."""
    name, path = site.name, site.path
    spec = mapping(mapping(reading.executors.get(label)).get("importer"))
    ipath: Path = ("deploymentSpec", "executors", label, "importer")
    source = mapping(spec.get("artifactUri"))
    if "constant" in source:
        uri, known = str(source["constant"]), True
    else:
        value = inputs.get(str(source.get("runtimeParameter", "")), v.ABSENT)
        if value.kind is not Kind.TEXT:
            reading.problem((*ipath, "artifactUri"), f"task {name!r}: the importer has no URI")
            return None
        uri, known = value.text, value.literal
    scheme = unread_scheme(uri) if known else None
    if scheme is not None:
        # Known now, so said now: a run would only fail at this task, after the ones before.
        reading.problem(
            (*ipath, "artifactUri"),
            f"task {name!r}: importer URI {uri!r}: pipesync does not read {scheme}:// "
            f"URIs; it imports {SUPPORTED}",
        )  # the task is still written: its consumers are not reported for its absence
    flat_name = context.prefix + name
    io = commands.TaskIO(flat_name, inputs)
    try:
        metadata, values = template(
            spec.get("metadata") or {}, lambda text: commands.render_text([text], io)[0]
        )
    except (ValueError, commands.CommandError) as error:
        reading.problem((*ipath, "metadata"), f"task {name!r}: importer metadata: {error}")
        return None
    target: Path = ("spec", "tasks", len(reading.tasks))
    reading.place(target, path)
    body: dict[str, Any] = {
        "name": flat_name,
        "command": argv(uri, metadata, values),
        "outputs": _outputs(),
    }
    place_task(reading, body, context, target)
    reading.tasks.append(body)
    return flat_name


def _outputs() -> dict[str, list[str]]:
    """An importer task's outputs: the artifact, and its metadata for the shim."""
    return {"artifacts": [OUTPUT], "parameters": [META_PREFIX + OUTPUT]}
