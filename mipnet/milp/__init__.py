"""MILP and LP encodings of ReLU networks: arrays into HiGHS, and a Pyomo block."""
