"""Where each task's box goes on the run page: a layered DAG layout computed on the server.

Why on the server: the page then only draws boxes at given places, so a 2,000-task DAG
costs the browser one pass over the nodes, and the layout is a pure, tested function.
The method is the usual layered one, kept near-linear: longest-path layers (Kahn's
order), a fixed number of barycenter sweeps to reduce crossings, and wide layers wrapped
into rows so a 2,000-way fan-out stays a readable block instead of a 400,000-px line.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

BOX_WIDTH, BOX_HEIGHT = 168.0, 40.0
GAP_X, GAP_Y, ROW_GAP = 24.0, 56.0, 16.0
MARGIN = 20.0
#: A layer wider than this is wrapped into several rows.
MAX_PER_ROW = 24
SWEEPS = 2


def layers(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: the length of the longest path reaching it. Edges naming unknown
    nodes are ignored; nodes on a cycle (which validation refuses) land after the rest."""
    known = set(nodes)
    children: dict[str, list[str]] = collections.defaultdict(list)
    indegree = dict.fromkeys(nodes, 0)
    for parent, child in edges:
        if parent in known and child in known and parent != child:
            children[parent].append(child)
            indegree[child] += 1
    layer = dict.fromkeys(nodes, 0)
    ready = collections.deque(node for node in nodes if indegree[node] == 0)
    seen = 0
    while ready:
        node = ready.popleft()
        seen += 1
        for child in children[node]:
            layer[child] = max(layer[child], layer[node] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if seen < len(nodes):
        deepest = max(layer.values(), default=0) + 1
        for node in nodes:
            if indegree[node] > 0:
                layer[node] = deepest
    return layer


def _ordered(
    nodes: Sequence[str], edges: Sequence[tuple[str, str]], layer: Mapping[str, int]
) -> list[list[str]]:
    by_layer: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for node in nodes:
        by_layer[layer[node]].append(node)
    parents: dict[str, list[str]] = collections.defaultdict(list)
    for parent, child in edges:
        if parent in layer and child in layer and layer[parent] < layer[child]:
            parents[child].append(parent)
    position = {node: index for row in by_layer for index, node in enumerate(row)}

    def barycenter(node: str) -> float:
        above = parents.get(node)
        if not above:
            return float(position[node])
        return sum(position[p] for p in above) / len(above)

    for _ in range(SWEEPS):
        for row in by_layer[1:]:
            row.sort(key=barycenter)
            for index, node in enumerate(row):
                position[node] = index
    return by_layer


def layout(nodes: Sequence[Mapping[str, Any]], edges: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """`nodes`: dicts with at least "id" (extra keys are kept); `edges`: (from, to) ids.
    Returns the contract's Graph: boxes with top-left x, y, width, height, and edges as
    polylines from the bottom of `from` to the top of `to`."""
    ids = [str(node["id"]) for node in nodes]
    layer = layers(ids, edges)
    rows = _ordered(ids, edges, layer)
    places: dict[str, tuple[float, float]] = {}
    widest = min(max((len(row) for row in rows), default=0), MAX_PER_ROW)
    full_width = widest * (BOX_WIDTH + GAP_X) - GAP_X
    y = MARGIN
    for row in rows:
        for start in range(0, len(row), MAX_PER_ROW):
            chunk = row[start : start + MAX_PER_ROW]
            width = len(chunk) * (BOX_WIDTH + GAP_X) - GAP_X
            x = MARGIN + (full_width - width) / 2
            for member in chunk:
                places[member] = (x, y)
                x += BOX_WIDTH + GAP_X
            y += BOX_HEIGHT + ROW_GAP
        y += GAP_Y - ROW_GAP
    boxes = []
    for node in nodes:
        x, y_top = places[str(node["id"])]
        boxes.append({**node, "x": x, "y": y_top, "width": BOX_WIDTH, "height": BOX_HEIGHT})
    lines = []
    for parent, child in edges:
        if parent in places and child in places and parent != child:
            (x1, y1), (x2, y2) = places[parent], places[child]
            lines.append(
                {
                    "from": parent,
                    "to": child,
                    "points": [
                        [x1 + BOX_WIDTH / 2, y1 + BOX_HEIGHT],
                        [x2 + BOX_WIDTH / 2, y2],
                    ],
                }
            )
    height = (y - (GAP_Y - ROW_GAP) + MARGIN) if rows else 2 * MARGIN
    return {
        "width": max(full_width, 0.0) + 2 * MARGIN,
        "height": height,
        "nodes": boxes,
        "edges": lines,
    }
