"""docs/architecture.md matches the code: its package table names every module of the
package, every `name.py` it mentions exists, and it lists exactly the import contracts
that `.importlinter` holds.

Why a test: the doc is where a newcomer learns which module owns what and where a change
goes; modules are split, moved and renamed often (issue 16), and a doc that names a
module that is gone, or misses one that exists, sends them to the wrong file.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "pipesync"
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")

# A file name in backticks, with an optional directory part: `runs.py`,
# `engine/layout.py`, `scripts/gen-crds.py`, `*_handlers.py` (a pattern).
MENTION = re.compile(r"`([\w*/.-]*?[\w*-]+\.py)`")
# One row of the package table: | `layer` | may do | the modules today |
LAYER_ROW = re.compile(r"^\| `(\w+)` \|.*$", re.MULTILINE)
# One contract in "How it is enforced": - **contract-id**: what it says
CONTRACT_BULLET = re.compile(r"^- \*\*([\w-]+)\*\*:", re.MULTILINE)


def _section(title: str) -> str:
    """The doc's text from the heading `## title` to the next `## ` heading."""
    start = DOC.index(f"## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else len(DOC)]


def _layer_rows() -> dict[str, str]:
    return {match.group(1): match.group(0) for match in LAYER_ROW.finditer(DOC)}


def _modules() -> list[Path]:
    """Every module of the package but its packages' `__init__.py`, relative to it."""
    return sorted(
        path.relative_to(PACKAGE) for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"
    )


def _exists(mention: str, under: Path) -> bool:
    """Whether some file below `under` is the mentioned one: its path ends with the
    mention (which may be a pattern such as `*_handlers.py`)."""
    return any(
        fnmatch.fnmatch(path.as_posix(), f"*/{mention}") for path in under.rglob(Path(mention).name)
    )


def test_the_package_table_names_every_module_in_its_layers_row() -> None:
    rows = _layer_rows()
    missing = []
    for module in _modules():
        layer = module.parts[0]
        named = {m.split("/")[-1] for m in MENTION.findall(rows.get(layer, ""))}
        if module.name not in named:
            missing.append(module.as_posix())
    assert missing == []


def test_every_layer_of_the_package_has_a_row_and_every_row_is_a_layer() -> None:
    layers = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert set(_layer_rows()) == layers


def test_every_module_a_layers_row_names_exists_in_that_layer() -> None:
    gone = [
        f"{layer}: {mention}"
        for layer, row in _layer_rows().items()
        for mention in MENTION.findall(row)
        if not _exists(mention, PACKAGE / layer)
    ]
    assert gone == []


def test_every_python_file_the_doc_mentions_exists() -> None:
    # Paths in the doc are relative to the package (`engine/layout.py`) or to the
    # repository (`scripts/gen-crds.py`).
    gone = [
        mention
        for mention in sorted(set(MENTION.findall(DOC)))
        if not (_exists(mention, PACKAGE) or _exists(mention, ROOT / "scripts"))
    ]
    assert gone == []


def _importlinter() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter", encoding="utf-8")
    return config


def _contract_sections() -> dict[str, str]:
    """Contract id -> its name, as `.importlinter` declares them."""
    config = _importlinter()
    prefix = "importlinter:contract:"
    return {
        section.removeprefix(prefix): config[section]["name"]
        for section in config.sections()
        if section.startswith(prefix)
    }


def test_the_doc_lists_exactly_the_importlinter_contracts() -> None:
    listed = CONTRACT_BULLET.findall(_section("How it is enforced"))
    assert sorted(listed) == sorted(_contract_sections())
    assert len(listed) == len(set(listed))


def test_the_lint_imports_example_shows_every_contract_kept() -> None:
    # lint-imports wraps long names at spaces; compare with whitespace collapsed.
    section = _section("How it is enforced")
    console = section[section.index("```console") :]
    console = console[: console.index("```", len("```console"))]
    flat = " ".join(console.split())
    contracts = _contract_sections()
    for name in contracts.values():
        assert f"{' '.join(name.split())} KEPT" in flat
    assert f"Contracts: {len(contracts)} kept, 0 broken." in flat
