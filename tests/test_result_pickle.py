"""Results travel between processes (process pools, dask): a MetaResult pickled before its
deferred fields (Q-profile intervals, se(tau2), fit statistics) were read must give the same
values after unpickling, and so must copies."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest

from ketameta import meta
from ketameta.synthesis.results_base import _DEFERRED_FIELDS

YI = [-0.89, -1.59, -1.35, -1.44, -0.22, -0.79, -1.62, 0.01, -0.47, -1.37, -0.34, 0.45, -0.02]
VI = [0.33, 0.19, 0.42, 0.02, 0.05, 0.01, 0.22, 0.004, 0.06, 0.07, 0.01, 0.53, 0.07]


def _same(a, b):
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    return a.shape == b.shape and all(
        (math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize(
    "move",
    [
        lambda r: pickle.loads(pickle.dumps(r)),
        copy.copy,
        copy.deepcopy,
    ],
    ids=["pickle", "copy", "deepcopy"],
)
@pytest.mark.parametrize("method", ["REML", "DL", "PM"])
def test_deferred_fields_survive_before_first_access(move, method):
    moved = move(meta(YI, VI, method=method))  # deferred fields not read yet
    fresh = meta(YI, VI, method=method)
    for name in _DEFERRED_FIELDS:
        value = getattr(moved, name)
        assert isinstance(value, (float, tuple)), (name, value)
        assert _same(value, getattr(fresh, name)), name
    assert math.isfinite(moved.tau2_ci[1])


def test_deferred_fields_survive_after_access():
    res = meta(YI, VI, method="REML")
    ci = res.tau2_ci
    again = pickle.loads(pickle.dumps(res))
    assert again.tau2_ci == ci
