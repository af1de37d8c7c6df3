"""A new user's first hour: helpful errors and warnings, figures inline in Jupyter, notebooks
that open as .ipynb (README.md's own code is run by tests/test_readme.py)."""

import json
import tomllib
import warnings
from pathlib import Path

import pandas as pd
import pytest

import ketameta as km
from ketameta.plots._style import KetametaFigure, png_bytes, save

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
NAMED = [*km.analyses.QUESTIONS]


@pytest.fixture(scope="module")
def studies():
    return km.load_studies()


@pytest.fixture(scope="module")
def controlled(studies):
    effects, _ = km.analyses.prepare_effects(studies, km.analyses.Settings())
    return effects[effects["contrast"] == "ketamine_vs_control"].reset_index(drop=True)


# --- meta() on the raw studies table ------------------------------------------------------


def test_meta_on_the_studies_table_names_the_function_that_computes_effects(studies):
    with pytest.raises(ValueError) as info:
        km.meta(data=studies)
    message = str(info.value)
    assert "meta()" in message and "'yi'" in message
    assert "km.escalc" in message and "km.analyses.prepare_effects" in message


def test_meta_with_a_misspelt_column_lists_the_columns(controlled):
    with pytest.raises(ValueError, match="'yi' column 'effect_size' is not in 'data'. Its col"):
        km.meta(data=controlled, yi="effect_size")


# --- one warning per named analysis -------------------------------------------------------


@pytest.mark.parametrize("name", NAMED)
def test_named_analysis_warns_at_most_once(name, studies):
    for call in (lambda: km.analyses.run(name, studies), getattr(km.analyses, name)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = call()
        assert len(caught) <= 1, [str(w.message) for w in caught]
        for w in caught:  # it counts the records, points to the table, and to the user's line
            assert f"{len(result.excluded)} records not used" in str(w.message)
            assert "see result.excluded_table()" in str(w.message)
            assert Path(w.filename).resolve() == Path(__file__).resolve()


def test_route_warning_counts_the_records_by_reason(studies):
    with pytest.warns(km.ExcludedStudyWarning) as record:
        result = km.analyses.route(studies)
    (message,) = [str(w.message) for w in record]
    assert message.startswith("route: 24 records not used (")
    assert "by the timepoint rule" in message and "arms combined" in message
    groups = result.excluded_table()["reason"].map(km.analyses.exclusion_group).value_counts()
    for group, count in groups.items():
        assert f"{count} {group}" in message


def test_psychotherapy_pooling_note_is_in_the_one_warning_and_in_notes(studies):
    with pytest.warns(km.KetametaWarning) as record:
        result = km.analyses.psychotherapy(studies)
    assert len(record) == 1
    assert any(note.startswith("direct: Only one study") for note in result.notes)
    assert "direct: Only one study" in str(record[0].message)


def test_run_all_warns_once_per_analysis(studies):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        km.analyses.run_all(studies)
    assert len(caught) <= len(NAMED)


def test_a_warning_filter_still_silences_the_summary(studies):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore")
        km.analyses.route(studies)
    assert caught == []


def test_excluded_table_is_the_full_excluded_list(studies):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = km.analyses.route(studies)
    table = result.excluded_table()
    assert list(table.columns) == ["record_id", "study", "reason"]
    assert list(zip(table["record_id"], table["reason"], strict=True)) == list(result.excluded)
    labels = dict(zip(studies["record_id"], studies["study_label"], strict=True))
    assert list(table["study"]) == [labels[r] for r in table["record_id"]]
    assert len(table) == 24


# --- figures display inline ---------------------------------------------------------------


def test_plots_return_a_figure_that_jupyter_shows_as_png(controlled, tmp_path):
    from IPython.core.formatters import PNGFormatter
    from matplotlib.figure import Figure

    res = km.meta(data=controlled, test="knha")
    by_route = km.subgroup(controlled, "route")
    figures = [res.plot_forest(), km.plots.funnel(res), by_route.plot_forest()]
    for fig in figures:
        assert isinstance(fig, KetametaFigure) and isinstance(fig, Figure)
        png = PNGFormatter()(fig)  # IPython's own formatter, no %matplotlib magic
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert png == fig._repr_png_() == png_bytes(fig)  # deterministic
        assert png == save(fig, tmp_path / "f.png").read_bytes()  # the bytes save() writes


def test_forest_plot_displays_inline_in_a_headless_notebook(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    code = "\n".join(
        [
            "import ketameta as km",
            "effects, _ = km.analyses.prepare_effects(km.load_studies(), km.analyses.Settings())",
            'effects = effects[effects["contrast"] == "ketamine_vs_control"]',
            'res = km.meta(data=effects, test="knha")',
            "res.plot_forest()",
        ]
    )
    assert "%matplotlib" not in code and "pyplot" not in code
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )  # fmt: skip
    client.execute()
    outputs = notebook.cells[0].outputs
    assert [o for o in outputs if o.output_type == "error"] == []
    results = [o for o in outputs if o.output_type == "execute_result"]
    assert len(results) == 1 and "image/png" in results[0].data  # not just "<Figure size ...>"


# --- notebooks ship as .ipynb, with an extra to open them ---------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_ships_as_ipynb_in_sync_with_its_py(path):
    jupytext = pytest.importorskip("jupytext")
    ipynb = path.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} missing: run jupytext --sync notebooks/*.py"
    stored = json.loads(ipynb.read_text(encoding="utf-8"))
    assert stored["metadata"]["kernelspec"]["name"] == "python3"
    assert "ipynb" in stored["metadata"]["jupytext"]["formats"]
    pair = jupytext.read(ipynb)
    text = jupytext.read(path)

    def cells(nb):
        return [(c.cell_type, c.source.strip()) for c in nb.cells]

    assert cells(pair) == cells(text), f"{ipynb.name} and {path.name} differ: jupytext --sync"
    for cell in pair.cells:
        assert "%matplotlib" not in cell.source
        if cell.cell_type == "code":
            assert cell.outputs == []  # shipped clean; outputs are made by running it


def test_notebook_extra_and_readme_say_how_to_open_them():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extra = config["project"]["optional-dependencies"]["notebook"]
    assert any(dep.startswith("jupyterlab") for dep in extra)
    assert any(dep.startswith("jupytext") for dep in extra)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install -e ".[notebook]"' in readme and "jupyter lab notebooks/" in readme


def test_every_named_analysis_has_the_same_interface():
    import warnings

    import ketameta as km

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in km.analyses.QUESTIONS:
            result = km.analyses.run(name)
            assert isinstance(result.summary(), pd.DataFrame)
            assert isinstance(result.tests(), pd.DataFrame)  # never an AttributeError
            fig = result.plot_forest()
            assert fig.axes, name
    with pytest.raises(ValueError, match="no direct evidence"):
        km.analyses.run("route").plot_forest("direct")
