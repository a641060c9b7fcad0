"""Located problems in user files, reported the way compilers do (`file:line:col: message`)."""

from __future__ import annotations

import dataclasses
import enum


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclasses.dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem at one place. Lines and columns count from 1, as editors show them."""

    file: str
    line: int
    column: int
    message: str
    severity: Severity = dataclasses.field(default=Severity.ERROR, compare=False)
    #: a bug in pipesync (an exception while reading the file), not a fault of the file
    internal: bool = dataclasses.field(default=False, compare=False)

    def format(self) -> str:
        prefix = "" if self.severity is Severity.ERROR else "warning: "
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.message}"


class InvalidDocument(Exception):
    """Raised where a caller needs a valid object and the input has errors."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(d.format() for d in diagnostics))
        self.diagnostics = diagnostics


def internal_error(file: str, error: BaseException) -> Diagnostic:
    """An exception that escaped while reading `file`, as that file's one-line problem:
    the other files are still read and reported, and the user learns it is a bug."""
    detail = " ".join(str(error).split())[:200]
    return Diagnostic(
        file,
        1,
        1,
        f"internal error in pipesync while reading this file (a bug; please report it): "
        f"{type(error).__name__}: {detail}",
        internal=True,
    )


def has_internal(diagnostics: list[Diagnostic]) -> bool:
    return any(d.internal for d in diagnostics)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)
