"""The shape of the package: the library never imports the review; the core never sees pandas.

An AST walk over the source (no import is executed), so a new module that breaks the layering
fails here whatever it does at run time, lazy imports inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ketameta"
LIBRARY = ("_core", "synthesis", "plots", "tables.py", "exceptions.py")


def imported_modules(path: Path, root: Path = PACKAGE) -> set[str]:
    """Absolute names of every module that ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(("ketameta", *path.relative_to(root).with_suffix("").parts[:-1]))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def library_files() -> list[Path]:
    files: list[Path] = []
    for part in LIBRARY:
        target = PACKAGE / part
        files.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    return files


def imports_review(names: set[str]) -> set[str]:
    return {n for n in names if n == "ketameta.review" or n.startswith("ketameta.review.")}


@pytest.mark.parametrize(
    "line",
    [
        "import ketameta.review",
        "from ketameta.review import questions",
        "from ketameta import review",
        "from ..review.studies import load_studies",
        "def f():\n    from ketameta.review.studies import load_studies",
    ],
)
def test_the_walk_sees_imports_of_every_form(tmp_path, line):
    # the checker itself must be able to fail: each of these lines imports the review
    probe = tmp_path / "ketameta" / "synthesis" / "_probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(line + "\n")
    assert imports_review(imported_modules(probe, root=tmp_path / "ketameta"))
    probe.write_text("from ketameta.synthesis import pooling\n")
    assert not imports_review(imported_modules(probe, root=tmp_path / "ketameta"))


@pytest.mark.parametrize("path", library_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_library_never_imports_the_review(path):
    bad = imports_review(imported_modules(path))
    assert not bad, f"{path.relative_to(PACKAGE)} imports the review: {sorted(bad)}"


@pytest.mark.parametrize(
    "path", sorted((PACKAGE / "_core").rglob("*.py")), ids=lambda p: p.name
)
def test_core_is_pure_numerics(path):
    bad = {
        n
        for n in imported_modules(path)
        if n.split(".")[0] in {"pandas", "matplotlib", "seaborn", "patsy", "statsmodels"}
        or (n.startswith("ketameta.") and not n.startswith("ketameta._core"))
    }
    assert not bad, f"_core/{path.name} imports {sorted(bad)}"


def test_few_modules_stand_at_the_top():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 6, top
    assert {"synthesis", "review", "_core", "plots"} <= {p.name for p in PACKAGE.iterdir()}


def test_import_loads_no_heavy_module():
    # names load on first use: `import ketameta` (and the CLI's --help) stay fast
    import subprocess
    import sys

    code = (
        "import sys, ketameta; heavy = [m for m in ('matplotlib', 'statsmodels', 'patsy', "
        "'scipy.optimize', 'pandas') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_every_public_name_resolves():
    import ketameta

    for name in ketameta.__all__:
        assert getattr(ketameta, name) is not None, name
