"""YAML text to plain data, keeping where every value came from.

PyYAML alone forgets positions, expands aliases without limit and silently keeps the
last of duplicate keys. Users' files deserve better: every error points at a line, an
alias bomb is refused before it is expanded, and a duplicate key is an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, NamedTuple

import yaml

from pipesync.api.diagnostics import Diagnostic

#: Larger files are refused before they are read: a pipeline file is a few KiB.
MAX_FILE_BYTES = 1024 * 1024
#: A document whose aliases expand to more nodes than this is refused.
MAX_NODES = 100_000
#: Deeper nesting is refused (no pipeline needs it; recursion limits would).
MAX_DEPTH = 100

Path = tuple[str | int, ...]


class Mark(NamedTuple):
    """A position; a tuple because a file has one per value and building them is hot."""

    line: int  # 1-based
    column: int  # 1-based


@dataclasses.dataclass(frozen=True)
class SourceDocument:
    """One YAML document of a file: its data and the positions of its values and keys."""

    file: str
    index: int
    data: Any
    start: Mark
    values: dict[Path, Mark]
    keys: dict[Path, Mark]

    def mark(self, path: Path, *, key: bool = False) -> Mark:
        """The position of the value (or the key) at `path`, or of its nearest ancestor."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), self.start)

    def shallow(self, depth: int) -> SourceDocument:
        """The same document with the positions of values at most `depth` levels deep
        only (a deeper one is located at its nearest kept ancestor): what is left to
        locate once its own checks are done is small to send to another process."""
        return dataclasses.replace(
            self,
            values={path: mark for path, mark in self.values.items() if len(path) <= depth},
            keys={path: mark for path, mark in self.keys.items() if len(path) <= depth},
        )

    def diagnostic(self, path: Path, message: str, *, key: bool = False) -> Diagnostic:
        mark = self.mark(path, key=key)
        return Diagnostic(self.file, mark.line, mark.column, message)


class _Builder:
    """Turns composed YAML nodes into data while recording positions."""

    _SCALAR_TAGS: ClassVar[frozenset[str]] = frozenset(
        {
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:null",
        }
    )

    def __init__(self, file: str, *, merges: bool = True, text: str = "") -> None:
        self.file = file
        self.text = text
        self.merges = merges
        self.values: dict[Path, Mark] = {}
        self.keys: dict[Path, Mark] = {}
        self.errors: list[Diagnostic] = []
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Path) -> Any:
        if len(path) > MAX_DEPTH:
            raise _Refused(f"values nested more than {MAX_DEPTH} levels deep; refusing it")
        self.values[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            placeholder = self._unquoted_placeholder(node)
            if placeholder is not None:
                return placeholder  # as the text it was meant to be: no follow-up errors
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        return self._scalar(node)

    def _unquoted_placeholder(self, node: yaml.MappingNode) -> str | None:
        """`x: {{params.n}}` is a YAML flow mapping, not text: say so, and how to fix it."""
        start = node.start_mark.index
        if not self.text.startswith("{{", start):
            return None
        end = self.text.find("}}", start)
        shown = self.text[start : end + 2] if 0 < end < start + 80 else "{{...}}"
        mark = _mark(node)
        self.errors.append(
            Diagnostic(
                self.file,
                mark.line,
                mark.column,
                f'{shown} is unquoted, so YAML reads it as a mapping; quote it: "{shown}"',
            )
        )
        return shown

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        if self.merges:
            self._constructor.flatten_mapping(node)  # resolves `<<` merge keys
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                mark = _mark(key_node)
                self.errors.append(
                    Diagnostic(self.file, mark.line, mark.column, "mapping keys must be scalars")
                )
                continue
            key = str(self._scalar(key_node))
            if key in result:
                mark = _mark(key_node)
                self.errors.append(
                    Diagnostic(self.file, mark.line, mark.column, f"duplicate key {key!r}")
                )
                continue
            self.keys[(*path, key)] = _mark(key_node)
            result[key] = self.build(value_node, (*path, key))
        return result

    def _scalar(self, node: yaml.Node) -> Any:
        # Timestamps stay strings: schemas check them as RFC 3339 text, as the API server does.
        if node.tag in self._SCALAR_TAGS:
            try:
                return self._constructor.construct_object(node, deep=True)
            except (ValueError, OverflowError):
                # e.g. an integer of more than 4,300 digits (Python's conversion limit)
                raise _Refused(
                    f"the number {str(node.value)[:20]}... is too large to read; "
                    "quote it if it is text",
                    _mark(node),
                ) from None
        return str(node.value)


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Refused(Exception):
    """A document that must not be built: recursive, too deep or too large."""

    def __init__(self, message: str, mark: Mark | None = None) -> None:
        super().__init__(message)
        self.mark = mark  # where the refused value is, when known (else the document)


def _expanded_size(node: yaml.Node, memo: dict[int, int], active: set[int], depth: int = 0) -> int:
    """Node count after alias expansion, computed without expanding (aliases share nodes)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    if id(node) in active:
        raise _Refused("a recursive YAML alias (a node that contains itself); refusing it")
    if depth > MAX_DEPTH:
        raise _Refused(f"values nested more than {MAX_DEPTH} levels deep; refusing it")
    active.add(id(node))
    size = 1
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    for child in children:
        size += _expanded_size(child, memo, active, depth + 1)
        if size > MAX_NODES:
            raise _Refused(
                f"document expands to more than {MAX_NODES} values (a YAML alias bomb?); "
                "refusing it"
            )
    active.discard(id(node))
    memo[id(node)] = size
    return size


def decode(raw: bytes, file: str) -> tuple[str | None, list[Diagnostic]]:
    """Bytes to text, refusing what is not a YAML text file."""
    if len(raw) > MAX_FILE_BYTES:
        return None, [
            Diagnostic(
                file, 1, 1, f"file is larger than {MAX_FILE_BYTES} bytes; refusing to read it"
            )
        ]
    if b"\x00" in raw:
        return None, [Diagnostic(file, 1, 1, "binary file (contains NUL bytes), not YAML")]
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError as error:
        return None, [
            Diagnostic(file, 1, 1, f"not UTF-8 text (byte {error.start}): binary file, not YAML")
        ]


def parse(text: str, file: str) -> tuple[list[SourceDocument], list[Diagnostic]]:
    """Every document of a YAML stream, with positions; syntax errors as diagnostics."""
    documents: list[SourceDocument] = []
    errors: list[Diagnostic] = []
    anchors = "&" in text
    try:
        for index, node in enumerate(_compose_all(text)):
            if node is None:
                continue
            builder = _Builder(file, merges="<<" in text, text=text)
            try:
                if anchors:  # without anchors there are no aliases, so no bomb to measure
                    _expanded_size(node, {}, set())
                data = builder.build(node, ())
            except _Refused as refusal:
                mark = refusal.mark or _mark(node)
                errors.append(Diagnostic(file, mark.line, mark.column, str(refusal)))
                continue
            errors.extend(builder.errors)
            documents.append(
                SourceDocument(file, index, data, _mark(node), builder.values, builder.keys)
            )
    except yaml.MarkedYAMLError as fast_error:
        # libyaml is fast but terse; the pure-Python parser names the offending token.
        errors.append(_syntax_error(file, _python_error(text) or fast_error))
    except yaml.YAMLError as error:
        errors.append(_syntax_error(file, error, text))
    except RecursionError:  # a YAML library recursing once per nesting level
        errors.append(Diagnostic(file, 1, 1, _TOO_DEEP))
    return documents, errors


_TOO_DEEP = f"values nested more than {MAX_DEPTH} levels deep; refusing it"


def _syntax_error(file: str, error: yaml.YAMLError, text: str = "") -> Diagnostic:
    """One `file:line:col: message` line at the offending character, whatever the error.

    PyYAML's own str() spans several lines and a ReaderError (a control character) has an
    offset, not a mark: both become one line at the character's line and column."""
    if isinstance(error, yaml.reader.ReaderError):
        line, column = _position(text, error.position)
        character = f"U+{error.character:04X}" if isinstance(error.character, int) else "byte"
        return Diagnostic(
            file,
            line,
            column,
            f"YAML error: control character {character} is not allowed; remove it, or "
            "write it as an escape inside a double-quoted string",
        )
    if isinstance(error, yaml.MarkedYAMLError):
        where = error.problem_mark or error.context_mark
        line, column = (where.line + 1, where.column + 1) if where else (1, 1)
        problem = error.problem or error.context or "invalid YAML"
        if "maximum nesting depth" in problem:
            return Diagnostic(file, line, column, _TOO_DEEP)
        return Diagnostic(file, line, column, f"YAML syntax error: {_one_line(problem)}")
    return Diagnostic(file, 1, 1, f"YAML error: {_one_line(str(error))}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _position(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of a character offset."""
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _python_error(text: str) -> yaml.MarkedYAMLError | None:
    """The pure-Python parser's error, which names the offending token; None when it
    cannot say (it recurses once per nesting level, and reads control characters first)."""
    try:
        loader = yaml.SafeLoader(text)  # reads (and checks) every character first
    except yaml.YAMLError:
        return None
    try:
        while loader.check_node():
            loader.get_node()
    except yaml.MarkedYAMLError as error:
        return error
    except (yaml.YAMLError, RecursionError):
        return None
    finally:
        loader.dispose()
    return None


class _Loader(yaml.CSafeLoader):
    """libyaml's parser with a memo for the implicit tags of plain scalars: the same keys
    and values recur across files, and resolving each in Python is the slow part."""

    _tags: ClassVar[dict[str, str]] = {}

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0] and isinstance(value, str):
            tag = self._tags.get(value)
            if tag is None:
                tag = _resolve_tag(self, kind, value, implicit)
                if len(self._tags) > 50_000:  # bounded: a memo, not a leak
                    self._tags.clear()
                self._tags[value] = tag
            return tag
        return _resolve_tag(self, kind, value, implicit)


_resolve_tag: Callable[..., Any] = yaml.CSafeLoader.resolve


def _compose_all(text: str) -> Iterator[yaml.Node | None]:
    loader = _Loader(text)
    try:
        while loader.check_node():
            yield loader.get_node()
    finally:
        loader.dispose()
