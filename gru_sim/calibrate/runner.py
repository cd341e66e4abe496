"""Running a calibration job: schedule the measurements, store them, and write the profile.

Each hardware group (dtype × impl × thread count) has its share of the budget. First, group after
group, the primitive micro-benchmarks (roofline ceilings) and the unit tables the cost model composes
calls from (:mod:`.unit_grid`); then whole calls, the groups taking turns point by point: the
space-filling design (``design_share`` of what the units left), the beyond-range slice; then, group
after group, the peak-memory probes (a few design points per dtype) and rounds of extra points next to
the configurations the model fits worst. Between measurements a reference call tracks the machine's
speed (:mod:`.drift`). Every measurement goes to the store at once, so an interrupted job resumes where
it stopped; :mod:`.build` turns the store into the profile.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..accounting import activation_bytes
from ..config import GruConfig
from ..errors import GruSimError, OutOfMemoryError
from ..measure import measure_gru
from ..measure.run import check_device
from ..machine import differences
from ..measure.fingerprint import fingerprint
from ..measure.kernels import build_kernel
from ..measure.memory import peak_memory_cpu, peak_memory_cuda
from ..measure.primitives import run_primitives
from ..measure.timing import TimingPolicy
from ..model.profile import Profile, save_profile
from . import design
from .build import build_profile, fit_model
from .drift import DriftTracker
from .jobs import JobSpec, job_differences
from .prior import UnitPrior
from .store import MeasurementStore
from .unit_grid import UnitTimer

# Progress callback: (seconds spent, seconds budgeted, what is being measured).
Progress = Callable[[float, float, str], None]
ADAPTIVE_ROUND = 6  # points per "fit worst" round
BEYOND_SHARE = 0.1  # budget share of the beyond-range slice, after the design
MEMORY_PROBE_DRAWS = 2000  # design points looked at to find memory probes of a useful size
# Whole calls a group measures per mode even when its unit tables used up its budget: the residual of
# each mode is fitted on its own calls (training does not compose from units alone).
MIN_DESIGN_POINTS = 16
# ... and held-out ones (quiet ones: a noisy one is reported apart), so that the self-check has figures.
MIN_HOLDOUT_POINTS = 3


@dataclass(frozen=True)
class Group:
    dtype: str
    impl: str
    threads: int

    def key(self, device: str) -> str:
        return f"{device}/{self.dtype}/{self.impl}/t{self.threads}"


def _device_probe(spec: JobSpec) -> GruConfig:
    """A small config of the job's device and first dtype, for checks before anything is measured."""
    return GruConfig(batch=1, seq_len=1, input_size=1, hidden_size=1, dtype=spec.dtypes[0],
                     impl=spec.impls[0], device=spec.device)


def _round_robin(phases: list[Iterator[None]]) -> None:
    """Advance each phase one step in turn until all are done."""
    while phases:
        for phase in list(phases):
            if next(phase, StopIteration) is StopIteration:
                phases.remove(phase)


def store_path_for(profile_path: str | Path) -> Path:
    """The SQLite store that sits beside a profile: ``x.json`` → ``x.sqlite``."""
    return Path(profile_path).with_suffix(".sqlite")


class Calibration:
    """One calibration job against one store."""

    def __init__(self, spec: JobSpec, store: MeasurementStore, progress: Progress | None = None) -> None:
        self.spec = spec
        self.store = store
        self.progress = progress or (lambda spent, budget, what: None)
        self.policy = TimingPolicy(min_sample_s=spec.timing.min_sample_s, budget_s=spec.timing.budget_s,
                                   min_samples=spec.timing.min_samples, max_samples=spec.timing.max_samples,
                                   warmup_s=0.02)
        self.groups = [Group(d, i, t) for d in spec.dtypes for i in spec.impls for t in spec.threads]
        self.group_budget_s = spec.budget_s / len(self.groups)
        self._units_s: dict[str, float] = {}
        self.drift = DriftTracker(store, spec.device)  # the machine's speed, between measurements

    # ---------------------------------------------------------------------------------- measuring
    def run(self) -> None:
        """Measure until every group's budget is spent (resuming whatever the store already has).

        The unit tables of every group come first; then the whole calls of all groups are taken
        in turn, one point of each group after the other, so that every group's fit sees the
        machine over the same minutes (a shared machine's speed drifts by the minute)."""
        self._check_store_matches()
        for g in self.groups:
            key = g.key(self.spec.device)
            if self.store.get_primitives(key) is None:
                self.progress(self.store.spent_s(), self.spec.budget_s, f"{key}: micro-benchmarks")
                start = time.perf_counter()
                prims = (run_primitives(g.dtype, g.threads, self.spec.device)
                         if self.spec.primitives and g.impl != "numpy-reference" else [])
                self.store.set_primitives(key, prims, time.perf_counter() - start)
            UnitTimer(self.spec, self.store, lambda what: self.progress(self.store.spent_s(), self.spec.budget_s, what),
                      two_passes=self.spec.unit_passes == 2, drift=self.drift).run(key, g.dtype, g.impl, g.threads)
            self._units_s[key] = self.store.spent_s(key)
        _round_robin([self._design_phase(g.key(self.spec.device), g) for g in self.groups])
        _round_robin([self._beyond_phase(g.key(self.spec.device), g) for g in self.groups])
        memory_done: set[str] = set()
        for g in self.groups:
            key = g.key(self.spec.device)
            if g.dtype not in memory_done:
                self._probe_memory(key, g)
                memory_done.add(g.dtype)
            self._adaptive_phase(key, g)

    def _beyond_phase(self, key: str, g: Group) -> Iterator[None]:
        """The beyond-range slice of ``key``, one point per step."""
        estimate = self._estimator(key)
        for c in design.beyond_configs(self.spec, g.dtype, g.impl, g.threads, self.spec.seed, estimate):
            if self._out_of_budget(key, min(1.0, self.spec.design_share + BEYOND_SHARE)):
                return
            self._measure(key, "beyond", c)
            yield

    def _check_store_matches(self) -> None:
        old = self.store.get_meta("job")
        new = self.spec.model_dump(mode="json")
        if old is not None and job_differences(old, new):
            raise GruSimError(f"{self.store.path} holds a different job ({old.get('name')}); "
                              "use another --out or delete the store to start over")
        fp_old = self.store.get_meta("fingerprint")
        fp_now = fingerprint(self.spec.device)
        if fp_old is not None and (diff := differences(fp_old, fp_now)):
            raise GruSimError(f"{self.store.path} was measured on another machine or stack "
                              f"({'; '.join(diff)}); use another --out")
        self.store.set_meta("job", new)
        self.store.set_meta("fingerprint", fp_now)

    def _out_of_budget(self, key: str, share: float = 1.0) -> bool:
        """Whether ``key`` has spent ``share`` of what its budget left after its unit tables."""
        units = self._units_s.get(key, 0.0)
        return self.store.spent_s(key) >= units + share * max(self.group_budget_s - units, 0.0)

    def _measure(self, key: str, role: str, config: GruConfig) -> None:
        if self.store.has(role, config):
            return
        self.progress(self.store.spent_s(), self.spec.budget_s, f"{key}: {role} {_short(config)}")
        self.drift.tick(key, config.dtype, config.impl, config.threads)
        start = time.perf_counter()
        try:
            m = measure_gru(config, policy=self.policy, probe_memory=False, check_error=False)
            if m.noisy:  # measured during a disturbance: take it again, keep the steadier of the two
                again = measure_gru(config, policy=self.policy, probe_memory=False, check_error=False)
                m = min(m, again, key=lambda x: x.latency_iqr_s / x.latency_s)
        except OutOfMemoryError:
            self.store.add(key, role, config, "oom", time.perf_counter() - start)
            return
        except Exception as err:  # CUDA OOM surfaces as torch's own error type
            if "out of memory" not in str(err).lower():
                raise
            self.store.add(key, role, config, "oom", time.perf_counter() - start)
            return
        self.store.add(key, role, config, "ok", time.perf_counter() - start, latency_s=m.latency_s,
                       latency_iqr_s=m.latency_iqr_s, noisy=m.noisy, first_call_s=m.first_call_s,
                       samples_s=m.samples_s)

    def _probe_memory(self, key: str, g: Group) -> None:
        """Peak memory of ``memory_probes`` mid-size design points per mode (memory does not
        depend on the thread count, so one group per dtype is probed). On a CPU the probes, each a
        fresh subprocess whose peak resident set is its own, run side by side, one per core: they
        time nothing, and nothing is timed meanwhile."""
        rng = np.random.default_rng(self.spec.seed + 31)
        stream = design.sobol_configs(self.spec, g.dtype, g.impl, g.threads, self.spec.seed + 1)
        picked = {mode: 0 for mode in self.spec.modes}
        todo: list[GruConfig] = []
        for _, c in zip(range(MEMORY_PROBE_DRAWS), stream):
            if all(n >= self.spec.memory_probes for n in picked.values()):
                break
            # Big enough that the allocator's noise (≈1 MiB) is small, cheap enough to run.
            if (picked[c.mode] >= self.spec.memory_probes or rng.random() < 0.3
                    or not 8 * 2**20 <= activation_bytes(c) <= 2**30
                    or design.rough_estimate_s(c) > 4 * self.spec.max_call_s):
                continue
            picked[c.mode] += 1
            if not self.store.has("memory", c) and c not in todo:
                todo.append(c)
        if not todo:
            return
        self.progress(self.store.spent_s(), self.spec.budget_s, f"{key}: peak memory of {len(todo)} calls")
        side_by_side = 1 if self.spec.device == "cuda" else max(1, min(os.cpu_count() or 1, len(todo)))
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=side_by_side) as pool:
            futures = {pool.submit(_peak_memory, c): c for c in todo}
            done = [(futures[f], f) for f in as_completed(futures)]
        # The probes' wall time, shared among them (they overlapped): the budget counts the seconds spent.
        each_s = (time.perf_counter() - start) / len(todo)
        for c, future in sorted(done, key=lambda cf: todo.index(cf[0])):
            try:
                self.store.add(key, "memory", c, "ok", each_s, peak_memory_bytes=future.result())
            except (GruSimError, OSError) as err:
                self.store.add(key, "memory", c, "oom" if "memory" in str(err) else "failed", each_s)

    def _design_phase(self, key: str, g: Group) -> Iterator[None]:
        """The space-filling design of ``key``, one point per step."""
        stream = design.sobol_configs(self.spec, g.dtype, g.impl, g.threads, self.spec.seed)
        estimate = self._estimator(key)
        flags = design.holdout_flags(100_000, self.spec.holdout_fraction, self.spec.seed)
        for n, c in enumerate(design.affordable(stream, estimate, self.spec.max_call_s)):
            train = self.store.points(key, "train")
            per_mode = min(sum(p.config.mode == mode for p in train) for mode in self.spec.modes)
            enough = ((per_mode >= MIN_DESIGN_POINTS
                       and sum(not p.noisy for p in self.store.points(key, "holdout")) >= MIN_HOLDOUT_POINTS)
                      or len(train) >= 5 * MIN_DESIGN_POINTS)  # a machine too noisy for quiet hold-outs: stop anyway
            if n >= flags.size or (self._out_of_budget(key, self.spec.design_share) and enough):
                break
            self._measure(key, "holdout" if flags[n] else "train", c)
            yield
            if n % 16 == 15:
                estimate = self._estimator(key)

    def _adaptive_phase(self, key: str, g: Group) -> None:
        rng = np.random.default_rng(self.spec.seed + 5)
        while not self._out_of_budget(key):
            train = [p for p in self.store.points(key, "train") if p.status == "ok" and not p.noisy]
            if len(train) < 10:
                return
            model = fit_model(self.spec, self.store, train, self.spec.seed, cv_folds=0)  # no interval needed
            x = [p.config for p in train]
            y = np.array([p.latency_s for p in train])
            err = np.abs(np.log(model.predict(x) / y))
            estimate = self._estimator(key)
            added = 0
            for k in np.argsort(-err)[:ADAPTIVE_ROUND]:
                for c in design.neighbours(x[k], self.spec, rng, 3):
                    if estimate(c) <= self.spec.max_call_s and not self.store.has("train", c):
                        self._measure(key, "train", c)
                        added += 1
                        break
                if self._out_of_budget(key):
                    return
            if added == 0:
                return

    def _estimator(self, key: str) -> Callable[[GruConfig], float]:
        """Call-time estimate for skipping expensive points: the units composed with what is fitted so
        far, else a rough guess."""
        pts = [p for p in self.store.points(key) if p.status == "ok" and p.role == "train" and not p.noisy]
        try:
            model = fit_model(self.spec, self.store, pts, self.spec.seed, cv_folds=0)
        except GruSimError:
            return design.rough_estimate_s
        return lambda c: model.predict_one(c) if model.group_for(c)[0] == key else design.rough_estimate_s(c)

def calibrate(spec: JobSpec, out: str | Path, progress: Progress | None = None,
              prior: UnitPrior | None = None) -> Profile:
    """Run (or resume) ``spec`` with its store beside ``out`` and write the profile to ``out``; with
    ``prior`` (a pool of this job on this machine kind), each unit table read against it (:mod:`.prior`)."""
    check_device(_device_probe(spec))  # a job for a missing device stops before creating anything
    with MeasurementStore(store_path_for(out)) as store:
        cal = Calibration(spec, store, progress)
        cal.run()
        profile = build_profile(spec, store, fingerprint(spec.device), prior=prior)
    save_profile(profile, out)
    return profile


def _peak_memory(c: GruConfig) -> int:
    return peak_memory_cuda(_cuda_call(c)) if c.device == "cuda" else peak_memory_cpu(c)


def _short(c: GruConfig) -> str:
    return (f"{c.mode[:5]} B{c.batch} T{c.seq_len} I{c.input_size} H{c.hidden_size} L{c.num_layers}"
            f"{'x2' if c.bidirectional else ''}")


def _cuda_call(config: GruConfig) -> Callable[[], object]:
    return build_kernel(config).call

