"""Helpers shared by the vectorised solvers: flattening stacked problems, gathering the active
rows, per-problem arguments, and the Newton stopping test.

Re-exported by :mod:`ketameta._core.iterative`.
"""

from __future__ import annotations

import numpy as np


def _take(arrays, sel):
    return [None if a is None else a[sel] for a in arrays]


def _flatten(yi, vi, m, *per_problem):
    k = yi.shape[-1]
    n = int(np.prod(yi.shape[:-1], dtype=np.int64))
    flat = [yi.reshape(n, k), vi.reshape(n, k), None if m is None else m.reshape(n, k)]
    return n, flat, _per_problem(yi.shape[:-1], n, per_problem)


def newton_converged(change, d_now, d_prev, t_now, t_prev, scale):
    """Whether the Newton step of size ``change`` taken at ``t_now`` leaves an error below
    ``scale / 100`` (callers: ``tol`` times the new iterate, a relative accuracy), so that the
    step which would only confirm convergence is not needed.

    A Newton step for f(t) = 0 from t_n leaves the error |f''/(2 f')| e_n², and e_n is about
    the step. f' is known at the last two iterates (``d_now`` at ``t_now``, ``d_prev`` at
    ``t_prev``), so f'' is estimated by their secant; the test asks for four times that
    estimate of the error to be below ``scale / 100``. NaN where there is no previous iterate
    (``t_prev`` NaN) or the derivative vanishes: never converged by this test. Floats or
    arrays; the caller sets the floating-point state.
    """
    curv = np.abs(d_now - d_prev) / (np.abs(t_now - t_prev) * np.abs(d_now))
    return curv * change * change <= 0.005 * scale


def _per_problem(shape, n, arrays):
    """Per-problem arrays (None kept) broadcast to ``shape`` and flattened to length n."""
    extra = []
    for a in arrays:
        if a is not None:
            a = np.asarray(a, dtype=np.float64)
            a = a.reshape(n) if a.size == n else np.broadcast_to(a, shape).reshape(n)
        extra.append(a)
    return extra
