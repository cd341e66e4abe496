"""Measuring real GRU kernels on this machine: the only part of gru-sim that imports torch.

``measure_gru(config)`` builds the kernel, times it with :mod:`.timing`, probes its peak memory with
:mod:`.memory` and checks its numerical error against the float64 NumPy reference.
"""

from .record import Measurement
from .run import measure_gru

__all__ = ["Measurement", "measure_gru"]
