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
# # 3. The two questions: psychotherapy and route
# Controlled comparisons, direct comparisons (therapy added to ketamine) and single-arm
# studies are kept apart; each record left out is listed with its reason. Each named analysis
# warns once, counting the records it did not use by reason; `excluded_table()` lists them all
# (record, study, reason).

# %%
import ketameta as km

route = km.analyses.route()
therapy = km.analyses.psychotherapy()
route.summary()

# %%
route.controlled.tests()

# %%
therapy.summary()

# %%
therapy.notes

# %%
therapy.excluded_table()

# %%
route.controlled.plot_forest(title="Intravenous vs intranasal")

# %% [markdown]
# ## The same question on responders
# `Settings(outcome="response", measure="RR")` asks it of response (risk ratios from the arm
# counts, at each comparison's primary timepoint); RR > 1 favours ketamine.

# %%
from ketameta.review.questions import Settings

response = km.analyses.route(settings=Settings(outcome="response", measure="RR"))
response.effects[["label", "events1", "n1", "events2", "n2", "yi", "vi"]]

# %%
response.controlled.plot_forest(title="Response, intravenous vs intranasal")
