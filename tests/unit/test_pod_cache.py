"""The run daemons' pod view (controllers/operator.py _PodCache): only runs being driven
are kept, the newest resourceVersion wins over a racing list, deletions drop pods, and
each pod is kept as the PodState pipesync.runtime.podstate reads from it."""

from __future__ import annotations

from typing import Any

from pipesync.controllers.operator import _PodCache

RUN = ("ml", "flow-1")


def pod(uid: str, version: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"name": f"p-{uid}", "uid": uid, "resourceVersion": str(version)},
        "spec": {"nodeName": "cpu-1", "containers": [{"name": "main", "image": "x" * 500}]},
        "status": {"phase": phase},
    }


def phases(cache: _PodCache) -> dict[str, str]:
    known = cache.known(RUN)
    assert known is not None
    return {p.uid: p.phase for p in known}


def test_pods_of_runs_no_daemon_drives_are_not_kept() -> None:
    cache = _PodCache()
    cache.update(RUN, "MODIFIED", pod("a", 5))
    assert cache.known(RUN) is None
    cache.expect(RUN)
    cache.prime(RUN, [])
    assert phases(cache) == {}  # the event before the daemon's list was not kept


def test_an_event_racing_the_first_list_is_not_rolled_back() -> None:
    cache = _PodCache()
    cache.expect(RUN)
    cache.update(RUN, "MODIFIED", pod("a", 9, "Succeeded"))  # arrives while listing
    cache.prime(RUN, [pod("a", 7, "Running"), pod("b", 8)])
    assert phases(cache) == {"a": "Succeeded", "b": "Running"}


def test_events_update_and_delete_and_forget_drops_everything() -> None:
    cache = _PodCache()
    cache.expect(RUN)
    cache.prime(RUN, [pod("a", 1)])
    cache.update(RUN, "MODIFIED", pod("a", 2, "Failed"))
    cache.update(RUN, "ADDED", pod("b", 3))
    cache.update(RUN, "DELETED", pod("b", 4))
    assert phases(cache) == {"a": "Failed"}
    slim = cache.known(RUN)
    # only what passes read: the state holds no container specs (images, commands)
    assert slim is not None and not hasattr(slim[0], "spec") and slim[0].gpus == 0
    cache.forget(RUN)
    assert cache.known(RUN) is None
    cache.update(RUN, "MODIFIED", pod("a", 5))
    cache.expect(RUN)
    cache.prime(RUN, [])
    assert phases(cache) == {}


def test_the_slim_pod_keeps_what_gpu_seconds_by_pool_need() -> None:
    cache = _PodCache()
    cache.expect(RUN)
    gpu = pod("g", 1)
    gpu["spec"]["nodeSelector"] = {"pipesync.io/pool": "gpu"}
    gpu["spec"]["containers"] = [
        {"name": "main", "image": "x", "command": ["train"], "env": [{"name": "A"}],
         "resources": {"limits": {"nvidia.com/gpu": "2", "cpu": "1"}}},
        {"name": "pipesync-outputs", "image": "op"},
    ]  # fmt: skip
    cache.prime(RUN, [gpu])
    known = cache.known(RUN)
    assert known is not None
    assert (known[0].node_name, known[0].pool, known[0].gpus) == ("cpu-1", "gpu", 2.0)
