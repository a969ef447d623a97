"""The harness stands outside the product: app/ imports it only inside the CLI's commands."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"


def harness_imports(tree: ast.AST) -> list[ast.stmt]:
    found: list[ast.stmt] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            alias.name.split(".")[0] == "harness" for alias in node.names
        ):
            found.append(node)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "harness":
            found.append(node)
    return found


def test_app_imports_the_harness_only_lazily_in_the_cli() -> None:
    wrong: list[str] = []
    for path in sorted(APP.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports = harness_imports(tree)
        if path.name == "cli.py" and path.parent == APP:
            top_level = {id(node) for node in tree.body}
            wrong += [f"{path}:{n.lineno} (module level)" for n in imports if id(n) in top_level]
        else:
            wrong += [f"{path}:{n.lineno}" for n in imports]
    assert not wrong, "app/ must not import harness/: " + ", ".join(wrong)
