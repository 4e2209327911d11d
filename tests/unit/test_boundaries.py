"""Stages meet only through public faces, and the kernel never imports a stage.

A stage is every top-level package of the repository except the kernel
(``stitchboard``) and the tests, so a new stage is covered when it is created.
Inside a stage, another stage may be imported only as ``import other`` or
``from other import name`` with ``name`` in ``other.__all__`` (its
``__init__.py``). The kernel may be imported by everyone; it must not import a
stage at module level (it loads stages by name, see ``stitchboard.stages``).
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNEL = "stitchboard"
NOT_STAGES = {KERNEL, "tests"}


def stage_packages(root: Path) -> list[str]:
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and (p / "__init__.py").is_file() and p.name not in NOT_STAGES
    )


def public_names(root: Path, package: str) -> set[str] | None:
    """The literal ``__all__`` of a package's ``__init__.py`` (None when it has none)."""
    tree = ast.parse((root / package / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and isinstance(
            node.value, ast.List | ast.Tuple
        ):
            return {
                e.value
                for e in node.value.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            }
    return None


def _imports(tree: ast.Module, module: str) -> Iterator[tuple[ast.stmt, str, list[str], bool]]:
    """(node, imported module, names taken from it, at module level) for every import."""
    package = module.rsplit(".", 1)[0]

    def visit(nodes: list[ast.stmt], top: bool) -> Iterator[tuple[ast.stmt, str, list[str], bool]]:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield node, alias.name, [], top
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                yield node, base, [a.name for a in node.names], top
            inner = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    yield from visit(
                        [c for c in children if isinstance(c, ast.stmt | ast.ExceptHandler)],
                        top and not inner,
                    )

    yield from visit(tree.body, True)


def violations(root: Path) -> list[str]:
    stages = stage_packages(root)
    faces = {s: public_names(root, s) for s in stages}
    found = [
        f"{s}/__init__.py: no __all__ (a stage says what other stages may use)"
        for s, names in faces.items()
        if names is None
    ]
    for owner in [*stages, KERNEL]:
        for path in sorted((root / owner).rglob("*.py")):
            relative = path.relative_to(root)
            module = ".".join(relative.with_suffix("").parts)
            tree = ast.parse(path.read_text(), str(relative))
            for node, target, names, top in _imports(tree, module):
                head = target.split(".")[0]
                if head not in stages or head == owner:
                    continue
                where = f"{relative}:{node.lineno}"
                if owner == KERNEL:
                    if top:
                        found.append(f"{where}: the kernel imports stage module {target!r}")
                    continue
                if target != head:
                    found.append(f"{where}: {owner} imports {target!r}, private to {head}")
                    continue
                public = faces[head] or set()
                for name in names:
                    if name not in public:
                        found.append(
                            f"{where}: {owner} imports {head}.{name}, not in {head}.__all__"
                        )
    return found


def test_stages_use_each_other_only_through_public_faces() -> None:
    assert violations(ROOT) == []


def test_the_stage_list_is_the_top_level_packages() -> None:
    stages = stage_packages(ROOT)
    assert {"collector", "correlator", "simulator", "bench"} <= set(stages)
    assert KERNEL not in stages and "tests" not in stages


@pytest.mark.parametrize("package", stage_packages(ROOT))
def test_every_public_name_exists(package: str) -> None:
    names = public_names(ROOT, package) or set()
    module = importlib.import_module(package)
    assert sorted(n for n in names if not hasattr(module, n)) == []


def test_the_checker_finds_each_kind_of_violation(tmp_path: Path) -> None:
    files = {
        "stitchboard/__init__.py": "",
        "stitchboard/core.py": (
            "import alpha\n"  # module level: refused
            "def later():\n    import alpha  # inside a function: allowed\n"
        ),
        "alpha/__init__.py": "from alpha.inner import thing\n__all__ = ['thing']\n",
        "alpha/inner.py": "thing = 1\nsecret = 2\n",
        "beta/__init__.py": "",  # no __all__
        "beta/uses.py": (
            "import alpha\n"  # the package itself: allowed
            "from alpha import thing\n"  # public: allowed
            "from alpha import secret\n"  # not in __all__
            "from alpha.inner import thing as again\n"  # private module
            "def f():\n    import alpha.inner\n"  # private, even inside a function
            "from stitchboard import core\n"  # the kernel: allowed
            "from . import uses\n"  # itself: allowed
        ),
        "tests/__init__.py": "import alpha.inner\n",  # tests are not a stage
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert violations(tmp_path) == [
        "beta/__init__.py: no __all__ (a stage says what other stages may use)",
        "beta/uses.py:3: beta imports alpha.secret, not in alpha.__all__",
        "beta/uses.py:4: beta imports 'alpha.inner', private to alpha",
        "beta/uses.py:6: beta imports 'alpha.inner', private to alpha",
        "stitchboard/core.py:1: the kernel imports stage module 'alpha'",
    ]
