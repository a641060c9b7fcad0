"""dsl.importer as a pipesync task: copy the artifact at a URI into the task's output.

KFP's importer is not a container; pipesync runs it as a small python3 program (the
standard library, plus boto3 for s3:// URIs, which pipesync's own image has). The URI is
one argv element (a constant, or a pipeline parameter's placeholder), so nothing from a
user reaches a shell. The importer's metadata goes to the hidden `kfp-meta-artifact`
output parameter, where lightweight consumers read artifact metadata (see shim.py).

This module only holds text and pure helpers; it does no I/O itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipesync.engine.kfp.shim import META_PREFIX

OUTPUT = "artifact"

PROGRAM = r"""
import json, os, shutil, sys, urllib.parse, urllib.request
uri, out, meta_out, metadata = sys.argv[1:5]
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


def argv(uri: str, metadata: Mapping[str, Any]) -> list[str]:
    """The importer task's command; `uri` may hold a pipesync placeholder."""
    return [
        "python3",
        "-c",
        PROGRAM,
        uri,
        "{{outputs.artifacts." + OUTPUT + "}}",
        "{{outputs.parameters." + META_PREFIX + OUTPUT + "}}",
        json.dumps(dict(metadata)),
    ]
