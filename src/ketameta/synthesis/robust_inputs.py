"""What ``robust()`` reads from a fitted model: the design, the working covariance, the clusters.

`_model_parts` takes ``X``, ``y``, the marginal covariance ``M`` (or its blocks), the term
names and the data from a ``meta()``, ``metareg()`` or ``meta_mv()`` result; `_cluster`
reads the cluster of each row used (a column name or one value per row). Helpers of
`ketameta.synthesis.robust`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _model_parts(result: Any) -> tuple[np.ndarray, np.ndarray, Any, list[str], pd.DataFrame]:
    """(X, y, M or its blocks, term names, data) of a MetaResult / MetaRegResult / MetaMVResult."""
    name = type(result).__name__
    if hasattr(result, "marginal_blocks"):  # MetaMVResult
        return (result.X, result.yi, result.marginal_blocks(), list(result.coef.index), result.data)
    if name == "MetaRegResult" or hasattr(result, "X") and hasattr(result, "coef"):
        tau2 = 0.0 if result.method in ("FE", "EE") else float(result.tau2)
        return (result.X, result.yi, np.diag(result.vi + tau2), list(result.coef.index), None)
    if hasattr(result, "yi") and hasattr(result, "vi") and hasattr(result, "tau2"):
        tau2 = 0.0 if result.method in ("FE", "EE") else float(result.tau2)
        y = np.asarray(result.yi, dtype=np.float64)
        return (
            np.ones((y.size, 1)),
            y,
            np.diag(np.asarray(result.vi) + tau2),
            ["intrcpt"],
            getattr(result, "data", None),
        )
    raise TypeError(f"robust(): cannot use a {name}; give a meta(), metareg() or meta_mv() result")


def _cluster(cluster: Any, data: pd.DataFrame | None, result: Any, k: int) -> np.ndarray:
    if isinstance(cluster, str):
        if data is None:
            raise ValueError(
                f"robust(): cluster {cluster!r} is a column name, but the result keeps no data; "
                "pass data= (the rows the model used) or an array"
            )
        if cluster not in data.columns:
            raise ValueError(f"robust(): cluster: column {cluster!r} is not in data")
        frame = data
        excluded = getattr(result, "excluded", ())
        if len(frame) != k and excluded:  # metareg() rows left out for missing moderators
            drop = {label for label, _ in excluded}
            frame = frame[[str(i) not in drop for i in frame.index]]
        values = frame[cluster].to_numpy()
    else:
        values = np.asarray(cluster.to_numpy() if isinstance(cluster, pd.Series) else cluster)
    if values.shape != (k,):
        raise ValueError(
            f"robust(): cluster must have one value per row used ({k}), got shape {values.shape}"
        )
    if pd.isna(values).any():
        raise ValueError("robust(): cluster has missing values")
    return values
