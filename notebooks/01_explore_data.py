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
# # 1. The curated evidence
# Every record of `data/studies.csv` says where its numbers come from (source, table or
# sentence, verbatim quote). This notebook looks at what the evidence covers.

# %%
import ketameta as km

studies = km.load_studies()
print(len(studies), "records from", studies["study_id"].nunique(), "studies")

# %% [markdown]
# Records per route and psychotherapy (the two questions of the review):

# %%
studies.assign(therapy=studies["psychotherapy"].ne("none")).pivot_table(
    index="route", columns="therapy", values="study_id", aggfunc="nunique", fill_value=0
)

# %% [markdown]
# The study flow: every study considered, with the decision and the reason.

# %%
screening = km.load_screening()
screening["decision"].value_counts()

# %%
row = studies.iloc[0]
print(row["record_id"], "|", row["source"], "|", row["source_location"])
print(row["source_quote"][:300])
