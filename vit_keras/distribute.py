"""Where training runs: one device, all local devices, or several workers.

`setup_distribution(mode, per_device_batch)` returns a `DistributionPlan` that the trainer
uses without knowing the engine behind it.
"""

import contextlib
import dataclasses

DISTRIBUTE_MODES = ("none", "data-parallel", "multi-worker")


@dataclasses.dataclass
class DistributionPlan:
    """How to build, feed and checkpoint a model for one distribution mode."""

    mode: str = "none"
    num_replicas: int = 1
    per_device_batch: int = 1
    is_chief: bool = True
    strategy: object = None  # a tf.distribute.Strategy on TensorFlow, else None

    @property
    def global_batch(self):
        return self.per_device_batch * self.num_replicas

    def scope(self):
        """Context in which the model and optimizer must be created."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def shard(self, dataset):
        """The part of a tf.data pipeline this worker reads (all of it on one worker)."""
        return dataset


def setup_distribution(mode="none", per_device_batch=32):
    """Configure the engine for `mode` and return its `DistributionPlan` (call before building)."""
    if mode not in DISTRIBUTE_MODES:
        raise ValueError(f"distribute must be one of {list(DISTRIBUTE_MODES)}; found {mode!r}.")
    if mode != "none":
        raise NotImplementedError(f"distribute={mode!r} is not implemented yet.")
    return DistributionPlan(mode=mode, per_device_batch=per_device_batch)
