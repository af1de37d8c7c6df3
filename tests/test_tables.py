import pandas as pd

from ketameta import meta
from ketameta.tables import format_summary, to_html, to_latex, to_markdown


def test_digits_by_kind_of_quantity():
    res = meta([-0.5, -0.2, -0.4, 0.3], [0.04, 0.05, 0.03, 0.02])
    cells = format_summary(res).iloc[0]
    assert cells["estimate"] == f"{res.estimate:.2f}"
    assert cells["i2"] == f"{res.i2:.1f}%"
    assert cells["k"] == "4"
    assert cells["pvalue"] == (f"{res.pvalue:.3f}" if res.pvalue >= 0.001 else "<0.001")
    assert cells["tau2"] == f"{res.tau2:.3g}"


def test_exports_escape_text():
    df = pd.DataFrame({"study": ["<script>alert(1)</script> & 50%_x"], "pvalue": [0.0001]})
    assert "<script>" not in to_html(df) and "&lt;script&gt;" in to_html(df)
    assert r"50\%\_x" in to_latex(df) and r"\&" in to_latex(df)
    md = to_markdown(df)
    assert md.splitlines()[1] == "| --- | --- |" and "<0.001" in md
