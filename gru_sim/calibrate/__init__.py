"""Calibration: run a job of measurements on new hardware, within a time budget and resumably, and
fit the cost model that the profile ships."""
