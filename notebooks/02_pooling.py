# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Pooling and heterogeneity
# Effect sizes with `escalc`, pooling with `meta` (metafor's `rma`), and the estimators.

# %%
import ketameta as km

effects = km.analyses.prepare_effects(km.load_studies(), km.analyses.Settings())[0]
controlled = effects[effects["contrast"] == "ketamine_vs_control"]
controlled[["label", "yi", "vi", "effect_path"]]

# %%
res = km.meta(data=controlled, labels="label", method="REML", test="knha")
res.summary().T

# %% [markdown]
# The same data under every tau² estimator:

# %%
import pandas as pd

pd.DataFrame(
    {m: km.meta(data=controlled, method=m).summary().iloc[0][["estimate", "tau2", "i2"]]
     for m in ["EE", "DL", "REML", "ML", "PM", "HE", "SJ", "HS", "EB"]}
).T

# %%
fig = res.plot_forest(title="Ketamine vs control: depression (Hedges' g)")
fig
