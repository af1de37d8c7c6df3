"""The ketamine and esketamine review, built on the library's public functions.

Modules, in the order the data travel:

- `studies`: the curated table (``data/studies.csv``): schema, `validate_studies`,
  `load_studies`, `load_screening`;
- `evidence`, `evidence_binary`: records → effect sizes (continuous scores; response and
  remission counts);
- `records`: which record of a study enters an analysis (timepoint rule) and multi-arm trials;
- `questions`: the named questions (overall, psychotherapy, route, drug, comparator,
  condition) and their `Settings`;
- `secondary`: the same questions on other scales (MADRS points, risk ratios);
- `published`: published meta-analytic results, for comparison;
- `config`: ``ketameta.toml``;
- `report`: the ``ketameta report`` builder.

Nothing in the library (`ketameta.synthesis`, `ketameta._core`, `ketameta.plots`,
`ketameta.tables`) imports this package.
"""
