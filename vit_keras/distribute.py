"""Where training runs: one device, all local devices, or several workers.

`setup_distribution(mode, per_device_batch)` configures the backend's own engine and returns a
`DistributionPlan` that the trainer uses without knowing the engine behind it:

- `none`: TensorFlow's default strategy; no distribution on JAX.
- `data-parallel`: `tf.distribute.MirroredStrategy` over the local devices (TensorFlow);
  `keras.distribution.DataParallel` over the local devices (JAX).
- `multi-worker`: `tf.distribute.MultiWorkerMirroredStrategy` from `TF_CONFIG` (TensorFlow);
  `keras.distribution.initialize` from `KERAS_DISTRIBUTION_*`, then `DataParallel` over every
  process's devices (JAX).

PyTorch: Keras 3 has no distribution engine for the torch backend (its `keras.distribution` API
runs on JAX only), so only `none` is accepted there.

The trainer builds the model, optimizer and `compile` inside `plan.scope()`, batches every
worker's dataset with `plan.global_batch`, passes it through `plan.shard(ds)`, writes logs only
when `plan.is_chief`, saves through `plan.output_path(path)` on every worker (only the chief's
copy lands at `path`), and `plan.backup_callback(dir)` resumes all workers from the chief's backup.
"""

import atexit
import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile

import keras

DISTRIBUTE_MODES = ("none", "data-parallel", "multi-worker")
TF_CONFIG_TASK_TYPES = ("chief", "worker")
KERAS_ENV = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)
_ADDRESS = re.compile(r"^[^\s:,]+:\d{1,5}$")


@dataclasses.dataclass
class DistributionPlan:
    """How to build, feed and checkpoint a model for one distribution mode."""

    mode: str = "none"
    num_replicas: int = 1
    per_device_batch: int = 1
    is_chief: bool = True
    strategy: object = None  # a tf.distribute.Strategy on TensorFlow, else None
    distribution: object = None  # a keras.distribution.Distribution on JAX, else None
    num_workers: int = 1
    worker_index: int = 0
    collective_save: bool = False  # JAX multi-process: every process must join each save
    _scratch: str = dataclasses.field(default=None, repr=False)

    @property
    def global_batch(self):
        """Images per training step over all replicas (every worker batches its dataset so)."""
        return self.per_device_batch * self.num_replicas

    def scope(self):
        """Context in which the model and optimizer must be created."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def shard(self, dataset):
        """This worker's part of a `tf.data` pipeline batched with `global_batch`.

        TensorFlow: `tf.distribute` splits each global batch over replicas and workers itself
        (here with the element-wise `DATA` auto-shard policy, right for files and in-memory
        arrays alike). JAX: every batch must split evenly over the devices, so the last partial
        batch is dropped, and with several processes worker i keeps the i-th slice of each
        global batch (all workers get the same number of equal batches; Keras' own per-process
        sharding is switched off). Each worker reads the whole pipeline.
        """
        if self.strategy is not None:
            import tensorflow as tf

            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            return dataset.with_options(options)
        if self.distribution is None:
            return dataset
        if self.num_workers == 1:
            return dataset.rebatch(self.global_batch, drop_remainder=True)
        import tensorflow as tf

        index = self.worker_index
        slices = dataset.rebatch(self.global_batch // self.num_workers, drop_remainder=True)

        def own_slice(*group):
            picked = tf.nest.map_structure(lambda t: t[index], group)
            return picked if len(picked) > 1 else picked[0]

        return slices.batch(self.num_workers, drop_remainder=True).map(own_slice)

    def scale_learning_rate(self, learning_rate):
        """Linear scaling rule: `learning_rate` is tuned for one device's batch; with N replicas
        the global batch is N times larger, so the step size is N times larger too
        (Goyal et al., 2017). Pair it with a warmup when N is large."""
        return learning_rate * self.num_replicas

    def backup_callback(self, backup_dir, delete_checkpoint=True):
        """A `vit_keras.runs.RunBackup` that every worker resumes from but only the chief writes.

        `backup_dir` must be on storage all workers can read (a shared filesystem or bucket).
        With `delete_checkpoint` the chief deletes the backup when `fit` ends.
        """
        from vit_keras.runs import RunBackup

        return RunBackup(
            backup_dir,
            is_chief=self.is_chief,
            collective_save=self.collective_save,
            delete_checkpoint=delete_checkpoint,
        )

    def output_path(self, path):
        """Where this worker saves a file meant for `path`: `path` itself on the chief.

        Other workers get the same file name in a private scratch directory. Call every save
        (`model.save`, `save_weights`, `export`) on every worker with this path: on JAX several
        processes gather the weights together, so a save that only the chief runs fails or hangs.
        """
        if self.is_chief:
            return path
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix=f"vit_keras_worker{self.worker_index}_")
            atexit.register(shutil.rmtree, self._scratch, ignore_errors=True)
        return os.path.join(self._scratch, os.path.basename(os.path.normpath(path)))


def setup_distribution(
    mode="none",
    per_device_batch=None,
    *,
    global_batch=None,
    devices=None,
    tf_config=None,
    coordinator_address=None,
    num_processes=None,
    process_id=None,
):
    """Configure the backend's engine for `mode` and return its `DistributionPlan`.

    Call it first, before any model is built (and on TensorFlow multi-worker, before any other
    TensorFlow op). Give either `per_device_batch` (default 32) or `global_batch` (must divide
    evenly by the number of replicas). `devices` picks local devices for `data-parallel`
    (default: all GPUs, else all CPU devices). `multi-worker` reads `tf_config` (default: the
    `TF_CONFIG` variable) on TensorFlow, and `coordinator_address`, `num_processes` and
    `process_id` (default: `KERAS_DISTRIBUTION_JOB_ADDRESSES`, `..._NUM_PROCESSES`,
    `..._PROCESS_ID`) on JAX. Bad values raise a `ValueError` before anything is configured.
    """
    if not isinstance(mode, str) or mode not in DISTRIBUTE_MODES:
        raise ValueError(f"distribute must be one of {list(DISTRIBUTE_MODES)}; found {mode!r}.")
    if per_device_batch is not None and global_batch is not None:
        raise ValueError(
            "Give per_device_batch or global_batch, not both; found "
            f"per_device_batch={per_device_batch!r} and global_batch={global_batch!r}."
        )
    for name, value in (("per_device_batch", per_device_batch), ("global_batch", global_batch)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ValueError(f"{name} must be a positive integer; found {value!r}.")
    backend = keras.backend.backend()
    if mode != "none" and backend not in ("tensorflow", "jax"):
        raise ValueError(
            f"distribute={mode!r} is not available on the {backend!r} backend: Keras 3 "
            "distributes training only on JAX (keras.distribution) and TensorFlow "
            "(tf.distribute). Use --backend jax or --backend tensorflow, or distribute='none'."
        )

    def batch_for(num_replicas):  # checked as soon as the replica count is known
        return _per_device_batch(per_device_batch, global_batch, num_replicas)

    if mode == "none":
        if backend == "jax":
            keras.distribution.set_distribution(None)
        return DistributionPlan(mode=mode, per_device_batch=batch_for(1))
    if backend == "tensorflow":
        return _tensorflow_plan(mode, batch_for, devices, tf_config)
    return _jax_plan(mode, batch_for, devices, coordinator_address, num_processes, process_id)


def _per_device_batch(per_device_batch, global_batch, num_replicas):
    if global_batch is None:
        return 32 if per_device_batch is None else per_device_batch
    if global_batch % num_replicas:
        raise ValueError(
            f"global_batch must be divisible by the number of replicas ({num_replicas}); "
            f"found global_batch={global_batch}. Use a multiple of {num_replicas}, e.g. "
            f"{max(1, global_batch // num_replicas) * num_replicas}."
        )
    return global_batch // num_replicas


# --- TensorFlow: tf.distribute ------------------------------------------------------------------


def parse_tf_config(text):
    """Validate a `TF_CONFIG` JSON string for multi-worker training and return it as a dict.

    Expected: `{"cluster": {"worker": ["host:port", ...], "chief": [...]?},
    "task": {"type": "worker" | "chief", "index": i}}`.
    """
    if text is None or not str(text).strip():
        raise ValueError(
            "distribute='multi-worker' on TensorFlow needs TF_CONFIG (JSON with 'cluster' and "
            "'task'); found it unset or empty. Example: "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG must be valid JSON; found {text!r} ({error}).") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object; found {type(config).__name__}.")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(f"TF_CONFIG['cluster'] must be a non-empty object; found {cluster!r}.")
    for job, addresses in cluster.items():
        if job not in TF_CONFIG_TASK_TYPES:
            raise ValueError(
                f"TF_CONFIG['cluster'] jobs must be among {list(TF_CONFIG_TASK_TYPES)} for "
                f"multi-worker training; found job {job!r}."
            )
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(
                f"TF_CONFIG['cluster'][{job!r}] must be a non-empty list of 'host:port'; found {addresses!r}."
            )
        for address in addresses:
            if not isinstance(address, str) or not _ADDRESS.match(address):
                raise ValueError(f"TF_CONFIG['cluster'][{job!r}] entries must be 'host:port'; found {address!r}.")
    if len(cluster.get("chief", [])) > 1:
        raise ValueError(f"TF_CONFIG['cluster']['chief'] has at most one entry; found {cluster['chief']!r}.")
    if not isinstance(task, dict):
        raise ValueError(f"TF_CONFIG['task'] must be an object with 'type' and 'index'; found {task!r}.")
    task_type, index = task.get("type"), task.get("index")
    if task_type not in cluster:
        raise ValueError(
            f"TF_CONFIG['task']['type'] must be one of the cluster's jobs {list(cluster)}; found {task_type!r}."
        )
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise ValueError(
            f"TF_CONFIG['task']['index'] must be an integer in [0, {len(cluster[task_type])}) for "
            f"job {task_type!r}; found {index!r}."
        )
    return config


def _tf_config_role(config):
    """(is_chief, worker_index, num_workers) for a validated TF_CONFIG; the chief is worker 0."""
    cluster, task = config["cluster"], config["task"]
    has_chief = "chief" in cluster
    num_workers = len(cluster.get("worker", [])) + (1 if has_chief else 0)
    if task["type"] == "chief":
        return True, 0, num_workers
    index = task["index"] + (1 if has_chief else 0)
    return index == 0, index, num_workers


def _tensorflow_plan(mode, batch_for, devices, tf_config):
    import tensorflow as tf

    if mode == "data-parallel":
        devices = list(devices) if devices is not None else _tensorflow_local_devices(tf)
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        replicas = strategy.num_replicas_in_sync
        return DistributionPlan(
            mode=mode, num_replicas=replicas, per_device_batch=batch_for(replicas), strategy=strategy
        )

    text = os.environ.get("TF_CONFIG") if tf_config is None else tf_config
    if isinstance(text, dict):
        text = json.dumps(text)
    config = parse_tf_config(text)
    os.environ["TF_CONFIG"] = json.dumps(config)  # the strategy's cluster resolver reads it
    is_chief, worker_index, num_workers = _tf_config_role(config)
    strategy = _reduce_nested_values(tf, tf.distribute.MultiWorkerMirroredStrategy())
    replicas = strategy.num_replicas_in_sync
    return DistributionPlan(
        mode=mode,
        num_replicas=replicas,
        per_device_batch=batch_for(replicas),
        is_chief=is_chief,
        strategy=strategy,
        num_workers=num_workers,
        worker_index=worker_index,
    )


def _reduce_nested_values(tf, strategy):
    """Make `strategy.reduce` accept what Keras 3's TensorFlow trainer passes it.

    Over several workers Keras calls `MultiWorkerMirroredStrategy.reduce` with a whole
    (images, labels) batch to build the model, and with `axis=0` on scalar metric values; the
    strategy takes neither (keras-team/keras#20585, tensorflow/tensorflow#72388). Reduce leaf by
    leaf, and reduce scalars over replicas only (`axis=None`).
    """
    reduce_one = strategy.reduce

    def rank(leaf):
        return strategy.experimental_local_results(leaf)[0].shape.rank

    def reduce(reduce_op, value, axis=None):
        def reduce_leaf(leaf):
            return reduce_one(reduce_op, leaf, axis=None if rank(leaf) == 0 else axis)

        return tf.nest.map_structure(reduce_leaf, value)

    strategy.reduce = reduce
    return strategy


def _tensorflow_local_devices(tf):
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


# --- JAX: keras.distribution ------------------------------------------------------------------


def parse_keras_cluster(coordinator_address=None, num_processes=None, process_id=None):
    """Validate the JAX multi-process settings (arguments, else `KERAS_DISTRIBUTION_*`).

    Returns `(coordinator_address, num_processes, process_id)`; the coordinator is process 0's
    `host:port` (a comma-separated list of all processes' addresses is accepted; the first is used).
    """
    values = [coordinator_address, num_processes, process_id]
    for i, name in enumerate(KERAS_ENV):
        if values[i] is None:
            values[i] = os.environ.get(name)
        if values[i] is None or str(values[i]).strip() == "":
            raise ValueError(
                f"distribute='multi-worker' on JAX needs {name} (or the matching argument of "
                f"setup_distribution); found it unset. Set {', '.join(KERAS_ENV)} on every process."
            )
    address, count, index = values
    first = str(address).split(",")[0].strip()
    if not _ADDRESS.match(first):
        raise ValueError(f"{KERAS_ENV[0]} must be 'host:port' of process 0; found {address!r}.")
    try:
        count, index = int(count), int(index)
    except (TypeError, ValueError):
        raise ValueError(
            f"{KERAS_ENV[1]} and {KERAS_ENV[2]} must be integers; found {count!r} and {index!r}."
        ) from None
    if count < 1:
        raise ValueError(f"{KERAS_ENV[1]} must be a positive integer; found {count}.")
    if not 0 <= index < count:
        raise ValueError(f"{KERAS_ENV[2]} must be in [0, {count}); found {index}.")
    return first, count, index


def _jax_plan(mode, batch_for, devices, coordinator_address, num_processes, process_id):
    distribution = keras.distribution
    worker_index, num_workers = 0, 1
    if mode == "multi-worker":
        address, num_workers, worker_index = parse_keras_cluster(coordinator_address, num_processes, process_id)
        distribution.initialize(address, num_workers, worker_index)
    if devices is None:
        devices = distribution.list_devices()  # every process's devices after initialize
    devices = list(devices)
    per_device_batch = batch_for(len(devices))
    # Several processes: `plan.shard` gives each its slice (Keras' auto-sharding needs a
    # static batch size and may leave processes with different step counts).
    data_parallel = distribution.DataParallel(devices=devices, auto_shard_dataset=num_workers == 1)
    distribution.set_distribution(data_parallel)
    return DistributionPlan(
        mode=mode,
        num_replicas=len(devices),
        per_device_batch=per_device_batch,
        is_chief=worker_index == 0,
        distribution=data_parallel,
        num_workers=num_workers,
        worker_index=worker_index,
        collective_save=num_workers > 1,
    )


def simulate_cpu_devices(count):
    """Split this machine's CPU into `count` devices, to try data-parallel without accelerators.

    TensorFlow: logical CPU devices (must run before TensorFlow initialises its devices).
    JAX: needs `XLA_FLAGS=--xla_force_host_platform_device_count=N` before JAX is imported;
    this checks it and raises a `ValueError` that names the variable otherwise.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
        return [d.name for d in tf.config.list_logical_devices("CPU")]
    if backend == "jax":
        import jax

        found = jax.local_device_count("cpu")
        if found != count:
            raise ValueError(
                f"JAX has {found} CPU devices, {count} asked: set "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={count} before JAX is imported."
            )
        return keras.distribution.list_devices("cpu")
    raise ValueError(f"simulate_cpu_devices runs on tensorflow or jax; found backend {backend!r}.")
