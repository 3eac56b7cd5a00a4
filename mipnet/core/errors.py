"""Exceptions raised by mipnet.

Every error derives from :class:`MipnetError`; each subclass also derives from
the matching built-in exception so callers can catch either.
"""

from __future__ import annotations


class MipnetError(Exception):
    """Base class of every mipnet error."""


class InvalidNetworkError(MipnetError, ValueError):
    """A network's weights, shapes or layers are not valid."""


class UnsupportedLayerError(MipnetError, NotImplementedError):
    """A model contains a layer or operator mipnet cannot convert."""


class InvalidDomainError(MipnetError, ValueError):
    """An input domain is empty, unbounded or of the wrong dimension."""


class SolverError(MipnetError, RuntimeError):
    """The MILP/LP solver failed or returned an answer that did not check out."""


class DatasetError(MipnetError, ValueError):
    """A dataset is missing or malformed."""


class InvalidArgumentError(MipnetError, ValueError):
    """An option has a value outside its allowed range (a density, a budget, a count...)."""


class TrainingError(MipnetError, ValueError):
    """Training or fine-tuning was asked for something it cannot do."""


class PruningError(MipnetError, ValueError):
    """A pruning request is invalid (unknown method, impossible density...)."""


class DeviceUnavailableError(MipnetError, RuntimeError):
    """The requested torch device (e.g. CUDA) is not available."""


class PlotError(MipnetError, ValueError):
    """A picture cannot be drawn from the given data."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a computation; ``partial`` holds what was found so far (or None).

    A ``KeyboardInterrupt`` (not a :class:`MipnetError`), so that ``except Exception``
    never swallows it. The solver layer raises it with the interrupted solve's
    :class:`~mipnet.solver.highs.SolveResult`; analyses catch ``KeyboardInterrupt`` at
    their top loop and return their partial answer as a bound.
    """

    def __init__(self, message: str = "interrupted", *, partial=None) -> None:
        super().__init__(message)
        self.partial = partial
