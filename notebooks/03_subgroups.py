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
