"""mipnet: analyse trained ReLU networks with mixed-integer programming."""

from .errors import (
    MipnetError,
    InvalidNetworkError,
    UnsupportedLayerError,
    InvalidDomainError,
    SolverError,
    DatasetError,
    InvalidArgumentError,
    TrainingError,
    PruningError,
    DeviceUnavailableError,
    PlotError,
)
from .network import Network
from .domain import Domain, Box, LinfBall, Polytope, as_domain

__version__ = "0.1.0"
