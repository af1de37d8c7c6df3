"""Pure numerics on numpy arrays: no pandas, no matplotlib.

Arrays are shaped ``(..., k)``: the last axis holds the studies, every leading axis indexes
independent meta-analyses. Ragged problems use a boolean ``mask`` of the same shape
(``True`` = the study takes part).
"""
