"""What a wheel carries: every file the packages read at run time, not only their modules."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch

from tests.support import ROOT


def test_every_non_python_file_of_a_package_is_named_as_package_data() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    packages = [p.rstrip("*") for p in setuptools["packages"]["find"]["include"]]
    data = setuptools.get("package-data", {})
    files = [
        path.relative_to(ROOT)
        for package in packages
        for path in (ROOT / package).rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    ]
    assert files, "the console's assets should be found"
    missing = [
        str(f)
        for f in files
        if not any(
            fnmatch(str(f.relative_to(f.parts[0])), pattern) for pattern in data.get(f.parts[0], [])
        )
    ]
    assert missing == [], f"not in [tool.setuptools.package-data]: {missing}"
