# %% [markdown]
# # 4. Sensitivity and small-study bias

# %%
import warnings

import ketameta as km

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
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
