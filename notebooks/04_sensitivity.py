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
# # 4. Sensitivity and small-study bias

# %%
import ketameta as km

overall = km.analyses.overall().controlled

km.leave_one_out(overall)

# %%
km.influence(overall)

# %%
print(km.egger_test(overall).summary())
print(km.begg_test(overall).summary())

# %%
filled = km.trim_and_fill(overall)
print(filled.k0, filled.side)
km.plots.funnel(overall, contours=True, filled=(filled.filled_yi, filled.filled_vi))
