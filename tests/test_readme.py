"""README.md's code runs as written: every ```python block, in order, in one namespace.

The blocks run in a temporary working directory (the figures they save land there) with
matplotlib's Agg backend, as a new user would paste them into ``python``.
"""

import re
from pathlib import Path

import matplotlib
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_python_blocks():
    blocks = python_blocks()
    assert len(blocks) >= 3
    assert "km.meta(yi, vi" not in README.read_text(encoding="utf-8")  # yi, vi never defined


@pytest.mark.filterwarnings("ignore::ketameta.ExcludedStudyWarning")  # the one summary warning
def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for number, block in enumerate(python_blocks(), start=1):
        code = compile(block, f"README.md python block {number}", "exec")
        try:
            exec(code, namespace)
        except Exception as exc:  # name the block, keep the traceback
            pytest.fail(f"README.md python block {number} raised {exc!r}")
    # the quick start saved its forest plots where the user is
    assert (tmp_path / "forest.png").stat().st_size > 0
    assert (tmp_path / "forest_by_route.png").stat().st_size > 0
    # and its objects are what the comments say
    import ketameta as km

    assert isinstance(namespace["res"], km.MetaResult) and namespace["res"].k >= 2
    assert set(namespace["effects"]["route"]) >= {"iv", "intranasal"}
