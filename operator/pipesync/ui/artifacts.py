"""What an artifact is and how to show it safely (pure functions).

Artifacts are whatever a task wrote, so nothing about them is trusted: the viewer is
guessed from the name and the first bytes, the content type served is one of a short
list (never text/html for something that merely claims to be an image), and the JSON
viewers get data normalised into three small shapes the page knows how to draw.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

#: Above this, JSON is not parsed for a viewer (the raw download still works).
MAX_PARSED_BYTES = 1024 * 1024
#: Text viewers show at most this much.
MAX_TEXT_BYTES = 256 * 1024

IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_type(head: bytes) -> str | None:
    for signature, content_type in IMAGE_SIGNATURES:
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start > len(head) - 4  # a character cut at the end of the sample
    return True


def _json(data: bytes) -> Any:
    if len(data) > MAX_PARSED_BYTES:
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def normalise_metrics(value: Any) -> dict[str, Any] | None:
    """A flat object of numbers, or KFP's {"metrics": [{"name", "numberValue"}]}."""
    if isinstance(value, Mapping) and isinstance(value.get("metrics"), list):
        found = {
            str(m.get("name")): _number(m.get("numberValue"))
            for m in value["metrics"]
            if isinstance(m, Mapping)
        }
        found = {k: v for k, v in found.items() if v is not None}
        return {"metrics": found} if found else None
    if isinstance(value, Mapping) and value:
        numbers = {str(k): _number(v) for k, v in value.items()}
        if all(v is not None for v in numbers.values()):
            return {"metrics": numbers}
    return None


def normalise_confusion(value: Any) -> dict[str, Any] | None:
    """{"labels", "matrix"} (the example's), or KFP's {"annotationSpecs", "rows"}."""
    if not isinstance(value, Mapping):
        return None
    labels: Any
    matrix: Any
    if "annotationSpecs" in value and "rows" in value:
        labels = [str(s.get("displayName", i)) for i, s in enumerate(value["annotationSpecs"])]
        matrix = [row.get("row") for row in value["rows"] if isinstance(row, Mapping)]
    else:
        labels, matrix = value.get("labels"), value.get("matrix")
    if not isinstance(labels, list) or not isinstance(matrix, list) or not matrix:
        return None
    size = len(labels)
    if len(matrix) != size or any(not isinstance(r, list) or len(r) != size for r in matrix):
        return None
    numbers = [[_number(cell) for cell in row] for row in matrix]
    if any(cell is None for row in numbers for cell in row):
        return None
    return {"labels": [str(label) for label in labels], "matrix": numbers}


def _curve(label: str, value: Any) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        return None
    fpr, tpr = value.get("fpr"), value.get("tpr")
    if not isinstance(fpr, list) or not isinstance(tpr, list) or len(fpr) != len(tpr) or not fpr:
        return None
    xs, ys = [_number(x) for x in fpr], [_number(y) for y in tpr]
    if any(v is None for v in (*xs, *ys)):
        return None
    return {"label": label, "fpr": xs, "tpr": ys, "auc": _number(value.get("auc"))}


def normalise_roc(value: Any) -> dict[str, Any] | None:
    """{"micro"/"macro"/...: {"fpr","tpr","auc"}, "per_class": {...}} (the example's),
    {"fpr","tpr"} alone, or KFP's confidenceMetrics list."""
    curves: list[dict[str, Any]] = []
    if isinstance(value, Mapping) and isinstance(value.get("confidenceMetrics"), list):
        points = [p for p in value["confidenceMetrics"] if isinstance(p, Mapping)]
        points.sort(key=lambda p: _number(p.get("falsePositiveRate")) or 0.0)
        single = _curve(
            "roc",
            {
                "fpr": [p.get("falsePositiveRate") for p in points],
                "tpr": [p.get("recall") for p in points],
            },
        )
        return {"curves": [single]} if single else None
    if isinstance(value, Mapping):
        single = _curve("roc", value)
        if single is not None:
            return {"curves": [single]}
        for key, item in value.items():
            if key == "per_class" and isinstance(item, Mapping):
                for label, sub in item.items():
                    curve = _curve(f"class {label}", sub)
                    if curve:
                        curves.append(curve)
                continue
            curve = _curve(str(key), item)
            if curve:
                curves.append(curve)
    return {"curves": curves} if curves else None


def classify(name: str, head: bytes) -> str:
    """The viewer for an artifact, from its name and its first bytes (up to 1 MiB)."""
    lowered = name.lower()
    if image_type(head):
        return "image"
    if lowered.endswith(".svg") or head.lstrip()[:5] == b"<svg ":
        return "image"
    if not _is_text(head[:4096]):
        return "binary"
    parsed = _json(head)
    if parsed is not None:
        if ("confusion" in lowered or "matrix" in lowered) and normalise_confusion(parsed):
            return "confusion_matrix"
        if "roc" in lowered and normalise_roc(parsed):
            return "roc"
        if normalise_confusion(parsed) and "labels" in parsed:
            return "confusion_matrix"
        if normalise_metrics(parsed):
            return "metrics"
        return "json"
    if lowered.endswith((".md", ".markdown")) or lowered in ("readme", "report", "summary"):
        return "markdown"
    stripped = head.lstrip()[:15].lower()
    if lowered.endswith((".html", ".htm")) or stripped.startswith((b"<!doctype html", b"<html")):
        return "html"
    return "text"


def content_type(viewer: str, head: bytes) -> str:
    """What the raw bytes are served as. Only images keep an image type; HTML and
    Markdown are served as HTML only under the sandbox policy (see app.py)."""
    if viewer == "image":
        return image_type(head) or "image/svg+xml"
    if viewer in ("metrics", "confusion_matrix", "roc", "json"):
        return "application/json"
    if viewer in ("html", "markdown"):
        return "text/html; charset=utf-8"
    if viewer == "text":
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def view_data(viewer: str, data: bytes) -> Any:
    parsed = _json(data)
    if viewer == "metrics":
        return normalise_metrics(parsed)
    if viewer == "confusion_matrix":
        return normalise_confusion(parsed)
    if viewer == "roc":
        return normalise_roc(parsed)
    if viewer == "json":
        return parsed
    return None


def markdown_html(text: str) -> str:
    """Markdown rendered with raw HTML disabled (so it comes out escaped) and only safe
    link schemes; the page still shows it in a sandboxed frame."""
    from markdown_it import MarkdownIt  # noqa: PLC0415 - only the artifact viewer needs it

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return f'<!doctype html><meta charset="utf-8"><body>{body}</body>'
