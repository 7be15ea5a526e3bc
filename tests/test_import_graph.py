"""The import graph keeps its shape: the contracts in pyproject.toml (`[tool.importlinter]`: layers,
the core free of channels, frameworks and queues, no circles in any package) and no module using
another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("intake", "voice", "mail", "worker", "web")


def test_the_import_contracts_hold(capsys) -> None:  # type: ignore[no-untyped-def]
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    report = capsys.readouterr().out
    assert code == 0, report
    assert "0 broken" in report and "KEPT" in report


def private_names_used_across_modules() -> list[str]:
    """`from a.b import _name` and `module._name` where the module is one of ours."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            ours: set[str] = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    for alias in node.names:
                        if node.module.split(".")[0] in PACKAGES:
                            ours.add(alias.asname or alias.name)
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {alias.name}")
                elif isinstance(node, ast.Import):
                    ours.update(a.asname or a.name for a in node.names if a.name in PACKAGES)
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name)
                    and node.value.id in ours
                ):
                    found.append(
                        f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}"
                    )
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    assert private_names_used_across_modules() == []
