"""The general meta-analysis library: works on anyone's data, knows nothing of ketamine.

- `effects`: `escalc` (effect sizes and sampling variances, as metafor's ``escalc()``);
- `pooling`: `meta`, `meta_batch` (common and random effects, every tau² estimator);
- `binary`: `meta_mh`, `meta_peto` (2x2 tables);
- `regression`: `metareg`, `permutest`; `subgroup`: `subgroup`;
- `sensitivity`: leave-one-out, influence, cumulative, GOSH, Baujat;
- `bias`: Egger, Begg, trim-and-fill, PET-PEESE, fail-safe N;
- `multiarm`: multi-arm trials (combine arms, split a shared control);
- `results`: the frozen result objects and their printers; `_inputs`: the input checks.

It sits on `ketameta._core` (pure numpy/scipy) and never imports `ketameta.review`.
"""
