"""Sub-commands of the ``mipnet`` command line.

Each module exposes ``register(subparsers)``, which adds its sub-command(s)
with a ``func(args) -> int`` handler. Heavy libraries are imported inside the
handlers so that ``mipnet --help`` stays fast.
"""

COMMAND_MODULES = [
    "info",
    "bounds",
    "regions",
    "stable",
    "verify",
    "sparsity",
    "train",
    "gap",
    "demo",
]
