"""The errors gru-sim raises for things a user can fix.

The library raises these and never prints or exits; the command line turns one into a single line on
stderr and an exit code. Any other exception is a bug and keeps its traceback.
"""


class GruSimError(Exception):
    """Base class: a problem the user can fix (bad input, missing file, impossible configuration)."""

    exit_code = 2


class ConfigError(GruSimError):
    """A GRU configuration is invalid (zero size, unknown dtype or impl, unsupported on this device)."""


class DeviceUnavailableError(GruSimError):
    """The requested device (e.g. cuda) is not present on this machine."""


class OutOfMemoryError(GruSimError):
    """A configuration would not fit in the memory of the device."""


class ProfileError(GruSimError):
    """A calibration profile is missing, unreadable, tampered with or of another schema version."""


class ScenarioError(GruSimError):
    """A scenario file is unreadable or invalid."""


class ThresholdFailed(GruSimError):
    """A job ran but failed its own threshold (e.g. validate --max-median-ape)."""

    exit_code = 1
