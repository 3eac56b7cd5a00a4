"""The analyses: linear regions, stable neurons and compression, equivalence, the pruning gap.

Analyses read a :class:`~mipnet.core.network.Network`, a domain and bounds; they never import torch.
"""
