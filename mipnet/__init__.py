"""mipnet: analyse trained ReLU networks with mixed-integer programming."""

from mipnet.core.errors import (
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
from mipnet.core.network import Network
from mipnet.core.domain import Domain, Box, LinfBall, Polytope, as_domain

__version__ = "0.1.0"
