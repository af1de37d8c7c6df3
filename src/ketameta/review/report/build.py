"""Build the self-contained HTML report from the studies table and a configuration.

The report reads results and figures; it recomputes nothing itself. Output is deterministic:
no timestamps, figures saved with fixed metadata, tables in a fixed order, so building twice
from the same data and configuration gives byte-identical files.
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.metadata as md
import io
import platform
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ketameta.plots import forest
from ketameta.plots._style import save
from ketameta.review import questions
from ketameta.review.config import ReportConfig, load_config
from ketameta.review.report.published_section import published_section
from ketameta.review.secondary import BINARY_NOTE, binary_analyses, madrs_md
from ketameta.review.studies import bundled_path, load_screening, load_studies
from ketameta.tables import to_html

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1d1d1d;line-height:1.45}
h1{font-size:1.7em}h2{border-bottom:2px solid #1f4e79;padding-bottom:.2em;margin-top:2em}
table.ketameta{border-collapse:collapse;font-size:.85em;margin:.8em 0}
table.ketameta th,table.ketameta td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left}
table.ketameta th{background:#f1f4f8}.scroll{overflow-x:auto}
table.ketameta td{max-width:26em}img{max-width:100%}.note{color:#555;font-size:.9em}
.warn{background:#fff7e0;border-left:4px solid #e0a800;padding:.5em 1em;font-size:.85em}
"""
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _sha256(path: Path | None) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path else "(defaults)"


def _table(df: pd.DataFrame) -> str:
    return f'<div class="scroll">{to_html(df)}</div>'


def _figure_html(fig: Any, alt: str) -> str:
    buffer = io.BytesIO()
    tmp = Path(".ketameta-figure.png")
    try:
        save(fig, tmp)
        buffer.write(tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def guard_csv(df: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``)
    with a single quote. Numbers (negative ones included) are left as numbers."""
    out = df.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = [
                ("'" + v) if isinstance(v, str) and v.startswith(FORMULA_START) else v
                for v in out[column]
            ]
    return out


def _versions() -> str:
    names = ("ketameta", "numpy", "scipy", "pandas", "statsmodels", "matplotlib")
    parts = []
    for name in names:
        try:
            parts.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts) + f"; Python {platform.python_version()}"


def _methods(settings: dict[str, Any], data_path: Path, config_path: Path | None) -> str:
    tp = settings["timepoint"]
    timepoint = (
        "each comparison's primary record"
        if tp == "primary"
        else f"the record closest to the centre of {tp[0]:g}-{tp[1]:g} days"
    )
    test = (
        "Hartung-Knapp adjustment with t(k-1) quantiles"
        if settings["test"] == "knha"
        else "Wald-type z tests"
    )
    return f"""<p>Effect measure: <b>{html.escape(settings["measure"])}</b>
(standardized mean difference, Hedges' g with the exact small-sample correction, for
<code>SMD</code>; negative values favour ketamine). Between-study variance: <b>{
        html.escape(settings["method"])
    }</b>, iterated to the exact root (tolerance 1e-12). Tests and
confidence intervals: {test}, at the {settings["level"]:g}% level; 95% prediction intervals as
metafor's <code>predict()</code>. Record selection: {timepoint}. Multi-arm trials:
<b>{html.escape(settings["multiarm"])}</b> (Cochrane Handbook 23.3.4). Subgroups pooled with
<b>{html.escape(settings["tau2_subgroups"])}</b> tau&sup2;; the test for subgroup differences is
given both as the QM test of a mixed-effects model with common tau&sup2; and as the Wald test on
the separately pooled estimates. Reported LS-mean differences are standardised with the SD
recovered from their SE (flagged <code>smd_from_contrast</code>) where arm-level SDs are not
reported: {settings["allow_sd_from_contrast"]}. Single-arm studies are analysed separately and
never pooled with controlled comparisons. Secondary analyses: the overall question as a raw
MADRS mean difference (which also uses trials reporting only an LS-mean difference with its SE),
and response and remission as risk ratios from the arm counts at each comparison's primary
timepoint. Published meta-analyses are shown for comparison, not pooled.</p>
<p class="note">Software: {html.escape(_versions())}.<br>Data: {html.escape(data_path.name)}
SHA-256 {_sha256(data_path)}; configuration SHA-256 {_sha256(config_path)}.</p>"""


def _flow(screening: pd.DataFrame) -> str:
    counts = screening["decision"].value_counts()
    rows = [("Studies considered", len(screening))] + [
        (label, int(counts.get(key, 0)))
        for key, label in (
            ("included", "Included (numbers extracted)"),
            ("awaiting_numbers", "Awaiting numbers (no usable numbers in sources read)"),
            ("excluded", "Excluded"),
        )
    ]
    flow = pd.DataFrame(rows, columns=["stage", "studies"])
    reasons = screening[screening["decision"] != "included"][
        ["study_id", "decision", "reason"]
    ].sort_values(["decision", "study_id"])
    return _table(flow) + "<h3>Studies not included, with the reason</h3>" + _table(reasons)


def _included(studies: pd.DataFrame) -> pd.DataFrame:
    cols = [
        "study_id",
        "first_author",
        "year",
        "design",
        "condition",
        "drug",
        "route",
        "psychotherapy",
        "comparator",
        "risk_of_bias",
        "risk_of_bias_reason",
    ]
    return studies.drop_duplicates("study_id")[cols].sort_values("study_id").reset_index(drop=True)


def _heading(name: str) -> str:
    """``overall_MADRS_mean_difference`` -> ``Overall MADRS mean difference``."""
    text = name.replace("_", " ")
    return text[:1].upper() + text[1:]


def _analysis_section(result: questions.ReviewAnalysis, tables: dict[str, pd.DataFrame]) -> str:
    parts = [
        f"<h2>{html.escape(_heading(result.name))}</h2>",
        f"<p><i>{html.escape(result.question)}</i></p>",
    ]
    summary = result.summary()
    if not summary.empty:
        tables[f"{result.name}_summary"] = summary
        parts.append(_table(summary))
    for kind, res in (
        ("Controlled comparisons", result.controlled),
        ("Direct comparisons (therapy added to ketamine)", result.direct),
        ("Single-arm pre-post studies", result.single_arm),
    ):
        if res is None:
            continue
        parts.append(f"<h3>{kind}</h3>")
        if hasattr(res, "tests"):
            tests = res.tests()
            tables[f"{result.name}_{kind.split()[0].lower()}_tests"] = tests
            parts.append("<p>Test for subgroup differences:</p>" + to_html(tests))
        if getattr(res, "k", 2) >= 1:
            fig = forest(res, title=f"{result.name.replace('_', ' ')}: {kind.lower()}")
            parts.append(_figure_html(fig, f"forest plot, {result.name}, {kind}"))
    if result.notes:
        parts.append(
            "<p class='note'>" + "<br>".join(html.escape(n) for n in result.notes) + "</p>"
        )
    if result.controlled is None and result.single_arm is None:
        parts.append("<p>No records answer this question in the current data.</p>")
    excluded = pd.DataFrame(list(result.excluded), columns=["record_id", "reason"])
    if not excluded.empty:
        tables[f"{result.name}_excluded"] = excluded
        parts.append(
            "<details><summary>Records not used in this analysis, with the reason"
            f" ({len(excluded)})</summary>{to_html(excluded)}</details>"
        )
    return "\n".join(parts)


def _sensitivity_section(
    results: dict[str, questions.ReviewAnalysis], tables: dict[str, pd.DataFrame]
) -> str:
    from ketameta.synthesis.bias import begg_test, egger_test, trim_and_fill
    from ketameta.synthesis.pooling import meta
    from ketameta.synthesis.sensitivity import compare_results, influence, leave_one_out

    parts = ["<h2>Sensitivity and small-study bias</h2>"]
    for name, analysis in results.items():
        res = analysis.controlled
        pools = (
            {"overall": res}
            if name == "overall" and res is not None and res.k >= 3
            else {f"{name}: {lv}": r for lv, r in getattr(res, "results", {}).items() if r.k >= 3}
        )
        for label, pooled in pools.items():
            key = label.replace(": ", "_").replace(" ", "_")
            parts.append(f"<h3>{html.escape(label)} (k = {pooled.k})</h3>")
            loo = leave_one_out(pooled).reset_index()
            infl = influence(pooled).reset_index()
            loo["influential"] = infl["influential"].to_numpy()
            tables[f"sensitivity_{key}_leave_one_out"] = loo
            signs = {bool(v) for v in (loo["ci_high"] < 0) | (loo["ci_low"] > 0)}
            survives = (
                "survives"
                if signs == {bool(pooled.ci_high < 0 or pooled.ci_low > 0)}
                else "does not survive"
            )
            parts.append(
                f"<p>Leave-one-out: the conclusion (CI excluding 0 or not) {survives} "
                "omitting each study in turn; influential studies (metafor's rule): "
                f"{html.escape(', '.join(infl.loc[infl['influential'], 'study']) or 'none')}"
                ".</p>" + _table(loo)
            )
            rows = []
            for test in (egger_test(pooled), begg_test(pooled)):
                rows.append({"test": test.test, "statistic": test.statistic, "pvalue": test.pvalue})
            tf = trim_and_fill(pooled)
            rows.append(
                {
                    "test": f"trim-and-fill (L0): k0 = {tf.k0}, side {tf.side}",
                    "statistic": tf.result.estimate,
                    "pvalue": tf.result.pvalue,
                }
            )
            bias = pd.DataFrame(rows)
            tables[f"sensitivity_{key}_small_study"] = bias
            parts.append(
                "<p>Small-study tests (with fewer than 10 studies these have little "
                "power; read them as descriptive):</p>" + _table(bias)
            )
            data = pooled.data
            if data is not None and "risk_of_bias" in data.columns:
                keep = (data["risk_of_bias"].astype(str) != "high").to_numpy()
                if 0 < keep.sum() < pooled.k:
                    low = meta(
                        pooled.yi[keep],
                        pooled.vi[keep],
                        method=pooled.method,
                        test=pooled.test,
                        level=pooled.level,
                    )
                    both = compare_results({"all studies": pooled, "without high RoB": low})
                    parts.append("<p>Risk-of-bias sensitivity:</p>" + _table(both.reset_index()))
                else:
                    parts.append(
                        "<p>Risk-of-bias sensitivity: no study at high risk of bias "
                        "in this pool (nothing to remove).</p>"
                    )
    return "\n".join(parts)


def build_report(
    *,
    data: str | Path | None = None,
    config: str | Path | None = None,
    out: str | Path = "build/report",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Build ``out/index.html`` and ``out/tables/*.csv``; return the path of the HTML file.

    Examples
    --------
    >>> import tempfile
    >>> path = build_report(out=tempfile.mkdtemp())  # doctest: +SKIP
    """
    say = progress or (lambda _msg: None)
    data_path = Path(data) if data else bundled_path()
    config_path = Path(config) if config else None
    cfg: ReportConfig = load_config(config_path)
    out_dir = Path(out)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    steps = ["load data", *questions.QUESTIONS, "write"]
    say(f"[1/{len(steps)}] loading {data_path}")
    studies = load_studies(data_path)
    screening_path = data_path.with_name("screening.csv")
    screening = load_screening(screening_path if screening_path.exists() else None)
    tables: dict[str, pd.DataFrame] = {"included_studies": _included(studies)}
    sections = []
    results: dict[str, questions.ReviewAnalysis] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, name in enumerate(questions.QUESTIONS, start=2):
            say(f"[{i}/{len(steps)}] analysis: {name}")
            results[name] = questions.run(name, studies, cfg.analysis)
            sections.append(_analysis_section(results[name], tables))
            if name == "overall" and cfg.analysis.measure == "SMD":
                sections.append(_analysis_section(madrs_md(studies, cfg.analysis), tables))
        sensitivity = _sensitivity_section(
            {k: results[k] for k in ("overall", "route", "psychotherapy")}, tables
        )
        binary = [
            _analysis_section(result, tables)
            for result in binary_analyses(studies, cfg.analysis, ("overall", "route"))
        ]
        published = published_section(results["overall"], tables, _table)
    messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    say(f"[{len(steps)}/{len(steps)}] writing {out_dir}")
    warn_html = (
        (
            "<div class='warn'><ul>"
            + "".join(f"<li>{html.escape(m)}</li>" for m in messages)
            + "</ul></div>"
        )
        if messages
        else "<p>None.</p>"
    )
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(cfg.title)}</title>
<style>{CSS}</style></head><body>
<h1>{html.escape(cfg.title)}</h1>
<h2>Methods</h2>{_methods(cfg.analysis.as_dict(), data_path, config_path)}
<h2>Study flow</h2>{_flow(screening)}
<h2>Included studies</h2>{_table(tables["included_studies"])}
{"".join(sections)}
{sensitivity}
<h2>Response and remission</h2>
<p class='note'>{html.escape(BINARY_NOTE)}</p>
{"".join(binary)}
{published}
<h2>Warnings raised while building</h2>{warn_html}
</body></html>
"""
    index = out_dir / "index.html"
    index.write_text(body, encoding="utf-8")
    for name, table in sorted(tables.items()):
        frame = guard_csv(table) if cfg.csv_guard else table
        frame.to_csv(out_dir / "tables" / f"{name}.csv", index=False, lineterminator="\n")
    return index
