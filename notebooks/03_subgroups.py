# %% [markdown]
# # 3. The two questions: psychotherapy and route
# Controlled comparisons, direct comparisons (therapy added to ketamine) and single-arm
# studies are kept apart; each record left out is listed with its reason.

# %%
import warnings

import ketameta as km

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    route = km.analyses.route()
    therapy = km.analyses.psychotherapy()

route.summary()

# %%
route.controlled.tests()

# %%
therapy.summary()

# %%
therapy.notes, therapy.excluded[:5]

# %%
route.controlled.plot_forest(title="Intravenous vs intranasal")

# %% [markdown]
# ## The same question on responders
# `Settings(outcome="response", measure="RR")` asks it of response (risk ratios from the arm
# counts, at each comparison's primary timepoint); RR > 1 favours ketamine.

# %%
from ketameta.review.questions import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    response = km.analyses.route(settings=Settings(outcome="response", measure="RR"))
response.effects[["label", "events1", "n1", "events2", "n2", "yi", "vi"]]

# %%
response.controlled.plot_forest(title="Response, intravenous vs intranasal")
