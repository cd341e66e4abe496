"""The calibrated cost model: from a profile's fitted hardware parameters to the time, memory and
parallelism of any GRU configuration. Imports numpy and scipy, never torch."""
