"""Accept what users hold as a network: a :class:`~mipnet.core.network.Network` or a torch MLP."""

from __future__ import annotations

from mipnet.core.errors import InvalidNetworkError
from mipnet.core.network import Network

__all__ = ["as_network"]


def as_network(net, name: str = "net") -> Network:
    """A :class:`Network`; a torch module is converted here, at the edge (torch imported lazily)."""
    if isinstance(net, Network):
        return net
    if hasattr(net, "state_dict") and hasattr(net, "modules"):
        from mipnet.io.torch import from_torch

        return from_torch(net)
    raise InvalidNetworkError(f"{name} must be a mipnet.Network or a torch MLP, got {type(net).__name__}; "
                              "load a file with mipnet.io.load_network")
