"""gru-sim: how fast, how much memory and how many machines a GRU network needs.

The pipeline runs one way: ``measure`` (real kernels) → ``calibrate`` (a fitted profile) →
``model`` (the cost model) → ``sim`` (SimPy simulations) → ``report`` (HTML).
"""

__version__ = "0.1.0"
