"""Printed results against metafor 3.8.1's numbers (tests/reference/), and the displays.

The numbers are parsed out of ``str(res)`` and compared with the reference values at the
precision metafor prints them: 4 decimals (|printed - reference| <= 5e-5), 2 for I², H², R².
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from _reference import load_case

from ketameta import meta, meta_mh, meta_peto, metareg, subgroup
from ketameta.synthesis.printing import fmtp, fmtt, stars

NUMBER = re.compile(r"<\s?0?\.0001|-?\d+\.\d+|-?\d+")
HALF4, HALF2 = 5e-5 + 1e-9, 5e-3 + 1e-9


def numbers(line: str) -> list[float]:
    """Every number of a line; metafor's ``<.0001`` reads as 0 (checked separately)."""
    return [0.0 if tok.startswith("<") else float(tok) for tok in NUMBER.findall(line)]


def line_after(text: str, start: str) -> str:
    """The line beginning with ``start``, without it."""
    hits = [line for line in text.splitlines() if line.startswith(start)]
    assert len(hits) == 1, f"{start!r} not found once in\n{text}"
    return hits[0][len(start) :]


def following(text: str, heading: str, n: int = 1, header: bool = False) -> list[str]:
    """The ``n`` table rows below a heading (after the blank line and, unless ``header``,
    the column names)."""
    lines = text.splitlines()
    i = lines.index(heading) + (2 if header else 3)
    return lines[i : i + n]


def close(printed: float, expected: float, half: float = HALF4) -> None:
    assert abs(printed - expected) <= half * max(1.0, abs(expected) * 1e-12), (printed, expected)


def check_p(cell: str, p: float) -> None:
    """A p-value cell: ``<.0001`` below 1e-4, else 4 decimals."""
    if p < 1e-4:
        assert cell.lstrip("= ").replace(" ", "") in ("<.0001", "<0.0001"), cell
    else:
        close(float(cell.lstrip("= ")), p)


def check_test_line(line: str, stat: float, df, p: float) -> None:
    """``Q(df = 12) = 152.2330, p-val < .0001`` or ``F(df1 = 2, df2 = 10) = ...``."""
    head, value = line.split(") = ", 1)
    dfs = [float(x) for x in re.findall(r"= ([\d.]+)", head)]
    assert dfs == (list(df) if isinstance(df, (list, tuple)) else [df])
    stat_text, p_text = value.split(", p-val ")
    close(float(stat_text), stat)
    check_p(p_text, p)


def check_coef_row(row: str, ref: dict, i: int = 0, knha: bool = False) -> None:
    """estimate se zval [df] pval ci.lb ci.ub of row ``i`` of a reference fit."""
    cells = row.split()
    if not re.match(r"^-?\d", cells[0]):
        cells = cells[1:]  # the row name
    values = [ref["b"][i], ref["se"][i], ref["zval"][i]]
    cols = [0, 1, 2]
    if knha:
        assert float(cells[3]) == ref["ddf"][0]
    p_at = 4 if knha else 3
    for j, value in zip(cols, values, strict=True):
        close(float(cells[j]), value)
    check_p(cells[p_at], ref["pval"][i])
    close(float(cells[p_at + 1]), ref["ci.lb"][i])
    close(float(cells[p_at + 2]), ref["ci.ub"][i])


# --- MetaResult: rma() -----------------------------------------------------------------------

RMA_DATA, RMA = load_case("rma_methods_bcg_logrr")


def _bcg():
    data = RMA_DATA.copy()
    data.attrs["measure"] = "RR"
    return data


@pytest.mark.parametrize("key", ["REML_z", "REML_knha", "DL_z", "ML_z", "PM_z", "EE_z", "FE_knha"])
def test_meta_print_matches_metafor(key):
    ref = RMA["fits"][key]
    res = meta(data=_bcg(), method=ref["method"], test=ref["test"])
    text = str(res)
    fixed = ref["method"] in ("EE", "FE")
    if fixed:
        model = {"EE": "Equal-Effects Model", "FE": "Fixed-Effects Model"}[ref["method"]]
        assert text.splitlines()[0] == f"{model} (k = 13)"
        assert "tau^2" not in text
    else:
        assert text.splitlines()[0] == (
            f"Random-Effects Model (k = 13; tau^2 estimator: {ref['method']})"
        )
        tau2, se = numbers(line_after(text, "tau^2 (estimated amount of total heterogeneity): "))
        close(tau2, ref["tau2"])
        close(se, ref["se.tau2"])
        (tau,) = numbers(line_after(text, "tau (square root of estimated tau^2 value):      "))
        close(tau, math.sqrt(ref["tau2"]))
    i2 = line_after(text, "I^2 (total heterogeneity / total variability):   ")
    assert i2.endswith("%")
    close(float(i2[:-1]), ref["I2"], HALF2)
    h2 = line_after(text, "H^2 (total variability / sampling variability):  ")
    close(float(h2), ref["H2"], HALF2)
    q_line = text.splitlines()[text.splitlines().index("Test for Heterogeneity:") + 1]
    check_test_line(q_line, ref["QE"], 12, ref["QEp"])
    header, row = following(text, "Model Results (log scale):", 2, header=True)
    assert header.split()[:3] == ["estimate", "se", "tval" if ref["test"] == "knha" else "zval"]
    check_coef_row(row, ref, knha=ref["test"] == "knha")
    assert ("***" in row) == (ref["pval"][0] <= 0.001)
    (exp_row,) = following(text, "Model Results (RR scale):")
    pred = ref["predict"]
    expected = [math.exp(ref["b"][0]), math.exp(ref["ci.lb"][0]), math.exp(ref["ci.ub"][0])]
    if not fixed:
        expected += [math.exp(pred["pi.lb"][0]), math.exp(pred["pi.ub"][0])]
    assert len(numbers(exp_row)) == len(expected)
    for printed, value in zip(numbers(exp_row), expected, strict=True):
        close(printed, value)


def test_meta_print_without_a_measure_has_no_scale_and_can_drop_stars():
    res = meta(RMA_DATA["yi"], RMA_DATA["vi"])
    text = res.text(signif_stars=False)
    assert "Model Results:" in text and "scale" not in text
    assert "***" not in text and "Signif. codes" not in text
    assert "Signif. codes:  0 '***' 0.001" in str(res)
    assert "-0.71" in res.text(digits=2) and "-0.7145" not in res.text(digits=2)


def test_meta_repr_is_one_short_line():
    res = meta(data=_bcg())
    assert repr(res) == "<MetaResult REML k=13 estimate=-0.7145 [-1.0669, -0.3622] (log RR)>"
    assert repr(meta(RMA_DATA["yi"], RMA_DATA["vi"], method="DL")).startswith(
        "<MetaResult DL k=13 estimate=-0.7141 ["
    )


def test_meta_summary_back_transformed():
    res = meta(data=_bcg())
    log = res.summary()
    assert log.index[0] == "RR" and log.loc["RR", "estimate"] == res.estimate
    table = res.summary(transform="exp")
    assert {"exp_estimate", "exp_ci_low", "exp_ci_high", "exp_pi_low", "exp_pi_high"} <= set(
        table.columns
    )
    assert "estimate" not in table.columns and "se_log" in table.columns
    ref = RMA["fits"]["REML_z"]
    assert table.iloc[0]["exp_estimate"] == pytest.approx(math.exp(ref["b"][0]), rel=1e-6)
    assert table.iloc[0]["exp_pi_high"] == pytest.approx(
        math.exp(ref["predict"]["pi.ub"][0]), rel=1e-6
    )
    assert table.attrs["scale"] == "exp (RR)"
    assert list(table.columns).index("exp_estimate") == list(log.columns).index("estimate")
    with pytest.raises(ValueError, match="not a ratio measure"):
        meta(RMA_DATA["yi"], RMA_DATA["vi"]).summary(transform="exp")
    with pytest.raises(ValueError, match="transform must be"):
        res.summary(transform="log10")


def test_meta_html_is_a_small_formatted_table():
    html = meta(data=_bcg())._repr_html_()
    assert html.count("<tr>") == 2  # header and one row, not 22 raw columns
    for header in ("Estimate (log RR)", "Standard error", "95% CI", "RR", "95% PI (RR)", "I²"):
        assert f">{header}</th>" in html
    assert "<td>-0.7145</td>" in html and "<td>0.3441 to 0.6962</td>" in html
    assert "<td>92.22%</td>" in html and "&lt;.0001" in html
    assert 'title="tau2"' in html


# --- MetaRegResult: rma(mods = ~ ablat) ------------------------------------------------------

REG_DATA, REG = load_case("metareg_bcg_ablat")


@pytest.mark.parametrize("key", ["REML_z", "REML_knha", "DL_z", "ML_z", "PM_z", "FE_z"])
def test_metareg_print_matches_metafor(key):
    ref = REG[key]
    data = REG_DATA.copy()
    data.attrs["measure"] = "RR"
    res = metareg(data, "~ ablat", method=ref["method"], test=ref["test"])
    text = str(res)
    if ref["method"] == "FE":
        assert text.splitlines()[0] == "Fixed-Effects with Moderators Model (k = 13)"
    else:
        assert (
            text.splitlines()[0]
            == f"Mixed-Effects Model (k = 13; tau^2 estimator: {ref['method']})"
        )
        tau2, se = numbers(line_after(text, "tau^2 (estimated amount of residual heterogeneity): "))
        close(tau2, ref["tau2"])
        close(se, ref["se.tau2"])
        (tau,) = numbers(line_after(text, "tau (square root of estimated tau^2 value): "))
        close(tau, math.sqrt(ref["tau2"]))
    i2 = line_after(text, "I^2 (residual heterogeneity / unaccounted variability): ")
    close(float(i2.rstrip("%")), ref["I2"], HALF2)
    h2 = line_after(text, "H^2 (unaccounted variability / sampling variability):   ")
    close(float(h2), ref["H2"], HALF2)
    r2 = line_after(text, "R^2 (amount of heterogeneity accounted for):            ")
    close(float(r2.rstrip("%")), ref["R2"], HALF2)
    lines = text.splitlines()
    qe = lines[lines.index("Test for Residual Heterogeneity:") + 1]
    assert qe.startswith("QE(df = 11) = ")
    check_test_line(qe, ref["QE"], 11, ref["QEp"])
    qm = lines[lines.index("Test of Moderators (coefficient 2):") + 1]
    knha = ref["test"] == "knha"
    assert qm.startswith("F(df1 = 1, df2 = 11)" if knha else "QM(df = 1)")
    check_test_line(qm, ref["QM"], [1, 11] if knha else 1, ref["QMp"])
    header, *rows = following(text, "Model Results (log scale):", 3, header=True)
    assert header.split()[:3] == ["estimate", "se", "tval" if knha else "zval"]
    for i, (name, row) in enumerate(zip(ref["coef_names"], rows, strict=True)):
        assert row.split()[0] == name
        check_coef_row(row, ref, i, knha=knha)


def test_metareg_two_moderators_and_display():
    ref = REG["REML_z_ablat_year"]
    res = metareg(REG_DATA, "~ ablat + year")
    text = str(res)
    lines = text.splitlines()
    qm = lines[lines.index("Test of Moderators (coefficients 2:3):") + 1]
    check_test_line(qm, ref["QM"], 2, ref["QMp"])
    assert "Model Results:" in text  # no measure in attrs: no scale claimed
    assert repr(res) == "<MetaRegResult REML k=13 mods='~ ablat + year' " + (
        f"QM={ref['QM']:.4f} p={ref['QMp']:.4f}>"
    )
    html = res._repr_html_()
    assert html.count("<tr>") == 4 and ">Term</th>" in html and "<td>ablat</td>" in html
    assert "R^2 (amount of heterogeneity accounted for)" in html and "QM(df = 2)" in html
    data = REG_DATA.copy()
    data.attrs["measure"] = "RR"
    table = metareg(data, "~ ablat").summary(transform="exp")
    assert table.loc["ablat", "exp_estimate"] == pytest.approx(
        math.exp(REG["REML_z"]["b"][1]), rel=1e-6
    )
    with pytest.raises(ValueError, match="not a ratio measure"):
        res.summary(transform="exp")


# --- SubgroupResult ----------------------------------------------------------------------------

SUB_DATA, SUB = load_case("subgroup_bcg_alloc")


def _subgroup(**options):
    data = SUB_DATA.copy()
    data.attrs["measure"] = "RR"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return subgroup(data, "alloc", **options)


def test_subgroup_print_matches_metafor():
    res = _subgroup()
    text = str(res)
    assert text.splitlines()[0].startswith("Subgroup Analysis by alloc (k = 13; 3 subgroups;")
    rows = following(text, "Model Results per Subgroup (log scale):", 4)
    sep = SUB["separate_REML"]["per_group"]
    for row, level in zip(rows[:3], SUB["levels"], strict=True):
        assert row.split()[0] == level
        check_coef_row(row, sep[level])
    assert rows[3].split()[0] == "Overall"
    check_coef_row(rows[3], RMA["fits"]["REML_z"])
    exp_rows = following(text, "Model Results (RR scale):", 3)
    for row, level in zip(exp_rows, SUB["levels"], strict=True):
        ref = sep[level]
        expected = [ref["b"][0], ref["ci.lb"][0], ref["ci.ub"][0]]
        expected += [ref["predict"]["pi.lb"][0], ref["predict"]["pi.ub"][0]]
        for printed, value in zip(numbers(row), expected, strict=True):
            close(printed, math.exp(value))
    het = following(text, "Heterogeneity per Subgroup:", 3)
    for row, level in zip(het, SUB["levels"], strict=True):
        k, tau2, tau, i2, h2, q, df, p = row.split()[1:]
        ref = sep[level]
        assert int(k) == ref["k"] and int(df) == ref["k"] - 1
        close(float(tau2), ref["tau2"])
        close(float(i2.rstrip("%")), ref["I2"], HALF2)
        close(float(q), ref["QE"])
        check_p(p, ref["QEp"])
    lines = text.splitlines()
    common = lines[
        lines.index("Test for Subgroup Differences (mixed-effects model, common tau^2):") + 1
    ]
    ref = SUB["modreg_REML_z"]
    check_test_line(common, ref["QM"], 2, ref["QMp"])
    heading = "Test for Subgroup Differences (Wald-type test of the subgroup estimates):"
    between = SUB["separate_REML"]["test_between_FE_on_estimates"]
    check_test_line(lines[lines.index(heading) + 1], between["Q_between"], 2, between["p"])


def test_subgroup_knha_common_tau2_and_display():
    res = _subgroup(test="knha", tau2="common")
    text = str(res)
    assert "common tau^2)" in text.splitlines()[0]
    ref = SUB["modreg_REML_knha"]
    lines = text.splitlines()
    line = lines[
        lines.index("Test for Subgroup Differences (mixed-effects model, common tau^2):") + 1
    ]
    assert line.startswith("F(df1 = 2, df2 = 10)")
    check_test_line(line, ref["QM"], [2, 10], ref["QMp"])
    cells = following(text, "Model Results per Subgroup (log scale):", 1)[0]
    cell = SUB["cellmeans_REML_z"]
    close(float(cells.split()[1]), cell["b"][0])  # alternate under the common tau²
    assert repr(res) == "<SubgroupResult by='alloc' levels=3 REML>"
    html = _subgroup()._repr_html_()
    assert html.count("<tr>") == 5 and ">Subgroup</th>" in html and "<td>Overall</td>" in html
    assert "QM(df = 2) = 1.7675, p-val = 0.4132" in html
    table = _subgroup().summary(transform="exp")
    assert table["exp_estimate"].iloc[0] == pytest.approx(
        math.exp(SUB["separate_REML"]["per_group"]["alternate"]["b"][0]), rel=1e-6
    )


# --- BinaryResult: rma.mh(), rma.peto() --------------------------------------------------------

BIN_DATA, BIN = load_case("binary_mh_peto_bcg")
COUNTS = BIN_DATA.assign(n1=BIN_DATA.tpos + BIN_DATA.tneg, n2=BIN_DATA.cpos + BIN_DATA.cneg)


def _binary(key):
    args = ("tpos", "n1", "cpos", "n2")
    if key == "PETO":
        return meta_peto(*args, data=COUNTS)
    return meta_mh(*args, data=COUNTS, measure=key[3:])


@pytest.mark.parametrize("key", ["MH_OR", "MH_RR", "MH_RD", "PETO"])
def test_binary_print_matches_metafor(key):
    ref = BIN[key]
    text = str(_binary(key))
    close(float(line_after(text, "I^2 (total heterogeneity / total variability):  ")[:-1]),
          ref["I2"], HALF2)  # fmt: skip
    close(float(line_after(text, "H^2 (total variability / sampling variability): ")), ref["H2"],
          HALF2)  # fmt: skip
    lines = text.splitlines()
    check_test_line(lines[lines.index("Test for Heterogeneity:") + 1], ref["QE"], 12, ref["QEp"])
    ratio = key != "MH_RD"
    (row,) = following(text, "Model Results (log scale):" if ratio else "Model Results:")
    cells = row.split()
    for cell, value in zip(cells[:3] + cells[4:], ("b", "se", "zval", "ci.lb", "ci.ub"),
                           strict=True):  # fmt: skip
        close(float(cell), ref[value])
    check_p(cells[3], ref["pval"])
    if ratio:
        label = "OR" if key == "PETO" else ref["measure"]
        (exp_row,) = following(text, f"Model Results ({label} scale):")
        expected = [ref["exp_b"], ref["exp_ci.lb"], ref["exp_ci.ub"]] if "exp_b" in ref else [
            math.exp(ref[v]) for v in ("b", "ci.lb", "ci.ub")
        ]  # fmt: skip
        for printed, value in zip(numbers(exp_row), expected, strict=True):
            close(printed, value)
    else:
        assert "scale" not in text
    if key == "MH_OR":
        cmh = line_after(text, "Cochran-Mantel-Haenszel Test:    CMH = ")
        assert cmh.startswith(f"{ref['MH']:.4f}, df = 1,  p-val < 0.0001")
        ta = line_after(text, "Tarone's Test for Heterogeneity: X^2 = ")
        assert ta == f"{ref['TA']:.4f}, df = 12, p-val < 0.0001"
    else:
        assert "Cochran-Mantel-Haenszel" not in text


def test_binary_repr_summary_and_html():
    res = _binary("MH_RR")
    assert repr(res) == "<BinaryResult MH k=13 estimate=-0.4537 [-0.5308, -0.3766] (log RR)>"
    table = res.summary(transform="exp")
    assert table.loc["estimate", "scale"] == "exp" and "estimate" not in table.columns
    assert table.loc["estimate", "exp_estimate"] == pytest.approx(BIN["MH_RR"]["exp_b"])
    html = res._repr_html_()
    assert ">Estimate (log RR)</th>" in html and "<td>0.6353</td>" in html
    with pytest.raises(ValueError, match="not a ratio measure"):
        _binary("MH_RD").summary(transform="exp")


# --- formats -----------------------------------------------------------------------------------


def test_metafor_number_formats():
    assert fmtp(2e-5) == "<.0001" and fmtp(0.00123) == "0.0012" and fmtp(1.0) == "1.0000"
    assert fmtp(2e-5, equal=True, sep=True, add0=True) == "< 0.0001"
    assert fmtp(0.5, equal=True, sep=True) == "= 0.5000" and fmtp(float("nan")) == "NA"
    assert fmtt(30.7331, "QE", 0.0012143, df=11) == "QE(df = 11) = 30.7331, p-val = 0.0012"
    assert (
        fmtt(4.96, "F", 0.03, df1=2, df2=10.5) == "F(df1 = 2, df2 = 10.5) = 4.9600, p-val = 0.0300"
    )
    assert [stars(p) for p in (1e-5, 0.005, 0.03, 0.07, 0.5, np.nan)] == [
        "***", "**", "*", ".", "", ""
    ]  # fmt: skip
