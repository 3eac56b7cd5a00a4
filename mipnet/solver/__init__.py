"""The solver layer: every HiGHS object of mipnet is made and driven here.

:class:`~mipnet.solver.highs.LinearModel` builds an LP/MILP from numpy arrays, solves it
silently (no banner or log on stdout, whatever the highspy version), with time limits,
cutoffs and targets, and stops promptly on Ctrl-C (raising
:class:`~mipnet.core.errors.Interrupted` with the partial answer). No other module touches
a ``highspy.Highs`` object.
"""

from mipnet.solver.highs import (
    INF,
    MILP_OPTIONS,
    LinearModel,
    SolveResult,
    SolveStatus,
    check_options,
    new_highs,
)

__all__ = ["INF", "MILP_OPTIONS", "LinearModel", "SolveResult", "SolveStatus", "check_options", "new_highs"]
