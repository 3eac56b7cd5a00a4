"""Core types every layer of mipnet reads: errors, the network, domains, bounds, results, tolerances.

Nothing here imports any other part of mipnet.
"""
