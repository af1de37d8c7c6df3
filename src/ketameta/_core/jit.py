"""Whether the batched engine's inner loops run compiled (numba) or in numpy.

:func:`kernels` returns the module of compiled kernels (:mod:`ketameta._core._jit_kernels`,
imported, and numba with it, on first use), or None where numba is not installed or the
environment variable ``KETAMETA_JIT`` is ``0``; the numpy code in
:mod:`ketameta._core.iterative` then runs instead. Both give the same numbers to rounding.
:func:`enabled` switches the kernels off and on (tests compare the two paths).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

_STATE: dict = {"module": None, "tried": False, "on": True}


def kernels():
    """The compiled kernels, or None (numba missing, ``KETAMETA_JIT=0``, or switched off)."""
    if not _STATE["on"]:
        return None
    if not _STATE["tried"]:
        _STATE["tried"] = True
        if os.environ.get("KETAMETA_JIT", "1").strip().lower() not in ("0", "false", "no", "off"):
            try:
                from ketameta._core import _jit_kernels
            except Exception:  # noqa: BLE001 (numba missing, or no cache location): numpy
                _jit_kernels = None
            _STATE["module"] = _jit_kernels
    return _STATE["module"]


@contextmanager
def enabled(on: bool):
    """Use (``True``) or bypass (``False``) the compiled kernels inside a ``with`` block.

    Examples
    --------
    >>> from ketameta._core import jit
    >>> with jit.enabled(False):
    ...     jit.kernels() is None
    True
    """
    before = _STATE["on"]
    _STATE["on"] = bool(on)
    try:
        yield
    finally:
        _STATE["on"] = before
