"""Capacity planning: the cheapest deployment that serves a traffic within its latency SLO, and the
cheapest data-parallel setup that trains an epoch in time — found by searching with the simulators of
:mod:`gru_sim.sim`, each candidate priced by a calibrated cost model.

Pure Python on top of the simulators: no torch, no plotly. The search algorithm is described in
:mod:`gru_sim.plan.search`; the evaluation of one deployment in :mod:`gru_sim.plan.evaluate`.
"""

from .evaluate import ReplicaModel
from .models import replica_model
from .result import (PLAN_SCHEMA_VERSION, Candidate, Deployment, PlanResult, RuledOut, ScheduledRate, ServingPlan,
                     TrainingOption, TrainingPlan)
from .search import pareto_front, plan_serving
from .spec import Batching, Hardware, PlanSpec, SearchSpace, Slo, TrainingPlanSpec
from .training import StepForBatch, plan_training

__all__ = [
    "replica_model", "PLAN_SCHEMA_VERSION", "Candidate", "Deployment", "PlanResult", "RuledOut", "ScheduledRate",
    "ServingPlan", "TrainingOption", "TrainingPlan", "ReplicaModel", "pareto_front", "plan_serving", "Batching",
    "Hardware", "PlanSpec", "SearchSpace", "Slo", "TrainingPlanSpec", "StepForBatch", "plan_training",
]
