"""docs/architecture.md stays true: every module of sagan_cli is in its map, every module it names exists,
the layers import only downwards, and no module passes 400 lines (the CLI's import cost: test_cli_completions.py)."""

from __future__ import annotations

import ast
import re

from conftest import REPO

PKG = REPO / "sagan_cli"
DOC = REPO / "docs" / "architecture.md"
# which layers each layer may import (besides itself and the version in sagan_cli/__init__.py)
ALLOWED = {
    "util": set(),
    "models": {"util"},
    "data": {"util"},
    "train": {"models", "data", "util"},
    "inspect": {"models", "util"},
    "metrics": {"inspect", "train", "models", "data", "util"},
    "cli": {"inspect", "metrics", "train", "models", "data", "util"},
}
MAX_LINES = 400


def modules() -> list[str]:
    return sorted(str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if p.name != "__init__.py" or p.parent != PKG)


def _documented() -> set[str]:
    """The module paths the map names: indented names under their folder lines, 'a.py, b.py' lists too."""
    block = DOC.read_text().split("```", 2)[1]
    found, stack = set(), []
    for line in block.splitlines()[1:]:
        if not line.strip() or line.strip() == "sagan_cli/":
            continue
        depth = (len(line) - len(line.lstrip())) // 2 - 1
        head = line.strip().split("  ")[0]
        stack = stack[:depth]
        if head.endswith("/"):
            stack.append(head.rstrip("/"))
            continue
        for name in re.findall(r"[\w]+\.py", head + " " + line):
            found.add("/".join([*stack, name]))
    return found


def test_the_map_names_every_module_and_only_modules_that_exist():
    documented, actual = _documented(), set(modules()) - {"cli/__init__.py", "data/__init__.py", "data/prepare/__init__.py",
                                                          "inspect/__init__.py", "train/__init__.py", "util/__init__.py",
                                                          "metrics/__init__.py"}
    assert not actual - documented, f"modules missing from docs/architecture.md: {sorted(actual - documented)}"
    assert not documented - set(modules()), f"docs/architecture.md names modules that do not exist: {sorted(documented - set(modules()))}"


def test_layers_import_only_downwards():
    wrong = []
    for rel in modules():
        parts = rel.split("/")
        if len(parts) == 1:
            continue
        layer = parts[0]
        for node in ast.walk(ast.parse((PKG / rel).read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                bits = name.split(".")
                if bits[0] != "sagan_cli" or len(bits) < 2 or bits[1] == layer:
                    continue
                if bits[1] not in ALLOWED[layer]:
                    wrong.append(f"{rel} imports {name}")
    assert not wrong, wrong


def test_no_module_is_over_400_lines():
    long = {rel: n for rel in modules() if (n := len((PKG / rel).read_text().splitlines())) > MAX_LINES}
    assert not long, long
