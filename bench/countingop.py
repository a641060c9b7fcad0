"""`python -m bench.countingop COUNTS_FILE operator ...`: `pipesync operator`, unchanged,
with every HTTP request it sends to the API server counted and dumped to COUNTS_FILE.

Why this wrapper: the figure "API requests per task" must include kopf's own requests
(watches, status and annotation patches, events), not only the run controller's
`KubeClient.requests`, and the operator must keep its own main thread (kopf wants it). So both
HTTP stacks the process uses are wrapped before the command starts: aiohttp (kopf) and the
kubernetes client's urllib3 layer (pipesync.kube's `KubeClient`). A watch counts once, when it
is opened. The counts are rewritten every 0.2 s (atomically) so the bench reads them while
the operator runs.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes.client import rest

from pipesync.cli.main import main

_counts: collections.Counter[str] = collections.Counter()
_lock = threading.Lock()


def _key(method: str, url: str, query: Any, code: int) -> str:
    watching = "watch=true" in url or "watch=1" in url or _has_watch(query)
    verb = "WATCH" if watching else method.upper()
    return f"{verb} {_resource(url)} {code}"


def _resource(url: str) -> str:
    """What a request is about, by kind (and subresource), without names: `pods`,
    `pods/log`, `runs/status`, `configmaps`, `events`."""
    path = urllib.parse.urlsplit(url).path.strip("/").split("/")
    if "namespaces" in path:
        rest_of = path[path.index("namespaces") + 2 :]
    else:  # cluster-wide: /api/v1/KIND or /apis/GROUP/VERSION/KIND
        rest_of = path[2:] if path[:1] == ["api"] else path[3:]
    if not rest_of:
        return "namespaces"
    kind = rest_of[0]
    return f"{kind}/{rest_of[2]}" if len(rest_of) > 2 else kind


def _has_watch(query: Any) -> bool:
    if not query:
        return False
    pairs = query.items() if isinstance(query, dict) else query
    return any(str(k) == "watch" and str(v).lower() in ("true", "1") for k, v in pairs)


def _add(key: str) -> None:
    with _lock:
        _counts[key] += 1


def _install() -> None:
    original_sync = rest.RESTClientObject.request

    def counted_sync(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        query = kwargs.get("query_params")
        try:
            response = original_sync(self, method, url, *args, **kwargs)
        except rest.ApiException as error:
            _add(_key(method, url, query, int(error.status or 0)))
            raise
        _add(_key(method, url, query, int(getattr(response, "status", 0) or 0)))
        return response

    rest.RESTClientObject.request = counted_sync  # type: ignore[method-assign]

    original_async = aiohttp.ClientSession._request

    async def counted_async(
        self: aiohttp.ClientSession, method: str, url: Any, *args: Any, **kwargs: Any
    ) -> aiohttp.ClientResponse:
        try:
            response = await original_async(self, method, url, *args, **kwargs)
        except aiohttp.ClientError:
            _add(_key(method, str(url), kwargs.get("params"), 0))
            raise
        _add(_key(method, str(url), kwargs.get("params"), response.status))
        return response

    aiohttp.ClientSession._request = counted_async  # type: ignore[method-assign]


def _dump_forever(path: Path) -> None:
    scratch = path.with_suffix(".tmp")
    while True:
        with _lock:
            text = json.dumps(dict(_counts))
        scratch.write_text(text)
        os.replace(scratch, path)
        time.sleep(0.2)


if __name__ == "__main__":
    target = Path(sys.argv[1])
    _install()
    threading.Thread(target=_dump_forever, args=(target,), daemon=True).start()
    sys.exit(main(sys.argv[2:]))
