"""The packages depend on each other in one direction only, read from the source (every
``import`` statement, lazy ones inside functions included):

    llm_pool  (CLI, dashboard, offline provider/demo)   may import everything below
    proxy     worker                                    sdk only; never each other
    sdk                                                 nothing of ours

and the CLI core (what ``pip install llm-pool`` installs without extras must run:
``pool --help``, ``pool ask``, ``pool provider``, the SDK) imports at module level only
the standard library, the base dependencies and other core modules.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("sdk", "proxy", "worker", "llm_pool")
# package -> the packages of ours it must never import
FORBIDDEN = {
    "sdk": {"proxy", "worker", "llm_pool"},
    "proxy": {"worker", "llm_pool"},
    "worker": {"proxy", "llm_pool"},
    "llm_pool": set(),
}
# import names of `dependencies` in pyproject.toml (and theirs that we import)
BASE_THIRD_PARTY = {"openai", "httpx", "pydantic", "pydantic_core", "tenacity"}
# modules of ours that the base install runs (besides the whole of sdk/)
CORE = ("llm_pool/__init__.py", "llm_pool/cli.py", "llm_pool/extras.py",
        "llm_pool/settings.py", "llm_pool/runtime.py", "llm_pool/commands/*.py",
        "llm_pool/offline/__init__.py", "llm_pool/offline/provider.py")
# modules of sdk/ that need an extra: never imported at module level by the core (the
# core imports them inside the function that needs them), so they are not core
SDK_EXTRA_MODULES = ("sdk/mcp/session.py",)  # the `mcp` extra


def _modules(package: str, root: Path = ROOT) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


def _name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """The absolute module names one import statement names."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolve against this module's package
            base = module.split(".")
            base = base[:len(base) - node.level + (1 if is_package else 0)]
            yield ".".join([*base, *([node.module] if node.module else [])])
        elif node.module:
            yield node.module


def imports(path: Path, *, module_level_only: bool = False,
            root: Path = ROOT) -> list[tuple[int, str]]:
    """``(line, module)`` of each import in ``path``; with ``module_level_only``, those run
    when the module is imported (not inside a function, nor under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(), str(path))
    module, is_package = _name(path, root), path.name == "__init__.py"
    if not module_level_only:
        return [(node.lineno, name) for node in ast.walk(tree)
                for name in _imported(node, module, is_package)]
    found: list[tuple[int, str]] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
        elif isinstance(node, ast.If | ast.Try | ast.With):
            todo += [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
            if isinstance(node, ast.Try):
                todo += [s for handler in node.handlers for s in handler.body]
        else:
            found += [(node.lineno, name) for name in _imported(node, module, is_package)]
    return found


def wrong_way(package: str, root: Path = ROOT) -> list[str]:
    return [f"{path.relative_to(root)}:{line}: {package} imports {name}"
            for path in _modules(package, root) for line, name in imports(path, root=root)
            if name.split(".")[0] in FORBIDDEN[package]]


@pytest.mark.parametrize("package", OURS)
def test_imports_point_one_way(package: str) -> None:
    assert _modules(package), f"no modules found in {package}/"
    assert wrong_way(package) == []


def _core_files() -> list[Path]:
    files = set(_modules("sdk")) - {ROOT / path for path in SDK_EXTRA_MODULES}
    for pattern in CORE:
        matched = sorted(ROOT.glob(pattern))
        assert matched, f"CORE names {pattern}, which matches no file"
        files.update(matched)
    return sorted(files)


def test_cli_core_imports_only_the_base_install_at_module_level() -> None:
    core = {_name(path) for path in _core_files()}
    allowed = set(sys.stdlib_module_names) | BASE_THIRD_PARTY
    bad = [f"{path.relative_to(ROOT)}:{line}: {name}"
           for path in _core_files()
           for line, name in imports(path, module_level_only=True)
           if name.split(".")[0] not in allowed and name not in core]
    assert bad == [], "import these inside the handler that needs them (llm_pool/extras.py)"


def test_the_walker_sees_lazy_relative_and_type_checking_imports(tmp_path: Path) -> None:
    """The walker itself: an import inside a function counts for the direction; one under
    ``if TYPE_CHECKING`` does not run at import time; relative imports resolve."""
    (tmp_path / "sdk").mkdir()
    probe = tmp_path / "sdk" / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nfrom . import errors\n"
                     "if TYPE_CHECKING:\n    import yaml\n"
                     "def f() -> None:\n    from ..proxy import db\n")
    assert sorted(imports(probe, root=tmp_path)) == [
        (1, "typing"), (2, "sdk"), (4, "yaml"), (6, "proxy")]
    assert sorted(imports(probe, module_level_only=True, root=tmp_path)) == [
        (1, "typing"), (2, "sdk")]
    assert wrong_way("sdk", tmp_path) == ["sdk/probe.py:6: sdk imports proxy"]
