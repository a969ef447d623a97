"""The import rules of design.md, read from the code: imports point down, never up.

`app/` is the product, importable and testable without Ray: it never imports the composition
layer (graph.py, launch.py, cli.py, deployments/) nor the tools around the product (harness/).
Engines know nothing of HTTP or calls, and the Twilio wire format knows nothing of the call loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
ABOVE_APP = {"graph", "launch", "cli", "deployments", "harness", "bench", "tests"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module `path` imports (lazily or not), with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def violations(package: Path, forbidden: set[str]) -> list[str]:
    """Imports in `package` of a module under any of the `forbidden` dotted prefixes."""
    wrong: list[str] = []
    for path in sorted(package.rglob("*.py")):
        for line, module in imported_modules(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                wrong.append(f"{path.relative_to(package.parent)}:{line} imports {module}")
    return wrong


def test_app_never_reaches_up_to_the_composition_layer_or_the_harness() -> None:
    assert violations(APP, ABOVE_APP) == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("speech", {"app.api", "app.calls", "app.telephony", "app.conversation", "fastapi"}),
        ("llm", {"app.api", "app.calls", "app.telephony", "app.conversation", "fastapi"}),
        ("rag", {"app.api", "app.calls", "app.telephony", "app.conversation", "fastapi"}),
        ("telephony", {"app.calls", "app.api", "app.conversation"}),
        ("db", {"app.api", "app.calls", "app.conversation"}),
    ],
)
def test_lower_layers_do_not_import_higher_ones(package: str, forbidden: set[str]) -> None:
    assert violations(APP / package, forbidden) == []


def test_the_rule_finds_lazy_imports_too(tmp_path: Path) -> None:
    package = tmp_path / "app"
    package.mkdir()
    (package / "bad.py").write_text("def f():\n    import launch\n    from harness.x import y\n")
    assert violations(package, ABOVE_APP) == [
        "app/bad.py:2 imports launch",
        "app/bad.py:3 imports harness.x",
    ]
