"""dsl.importer as a pipesync task: copy the artifact at a URI into the task's output.

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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipesync.engine.kfp.shim import META_PREFIX

OUTPUT = "artifact"

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
        "{{outputs.artifacts." + OUTPUT + "}}",
        "{{outputs.parameters." + META_PREFIX + OUTPUT + "}}",
        json.dumps(dict(metadata)),
        *values,
    ]


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
