"""Online experiments: variants assigned by hash, exposures logged durably, events attributed, results."""

from freshrec.experiments.model import Experiment, ExperimentIn, VariantIn
from freshrec.experiments.registry import Experiments

__all__ = ["Experiment", "ExperimentIn", "Experiments", "VariantIn"]
