"""One process of the distributed-training tests (run by tests/test_distribute.py).

`equivalence`: split the CPU in 2 devices, train a tiny ViT with one replica and with two at
the same global batch, and report both losses and the largest weight difference.
`worker`: one process of a multi-worker run (TF_CONFIG or KERAS_DISTRIBUTION_* in the
environment): train with the plan, write the run directory only on the chief, back up to a
shared directory, optionally die after an epoch; report to --out.

Each process is mostly import time, so it keeps out two optional imports it never uses
(matplotlib, which `keras` loads for its plotting helpers, and JAX, which TensorFlow Lite loads
when present, on the TensorFlow backend), and on TensorFlow, once its report is written, it ends
without the interpreter's teardown. Measured on a 2-core CPU shared with other work: importing
keras and vit_keras on TensorFlow took 7.0 s of CPU instead of 9.4 s.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np

GLOBAL_BATCH = 8


def tiny_dataset(count=32, seed=0):
    """Learnable 8x8x1 images: the class is which third of the image is brightest."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 3
    images = rng.uniform(0, 0.3, size=(count, 8, 8, 1)).astype("float32")
    for i, label in enumerate(labels):
        images[i, :, label * 2 : label * 2 + 3] += 0.7
    return images, labels.astype("int32")


def train(plan, epochs, callbacks=()):
    import keras
    import tensorflow as tf

    from vit_keras import ViT

    keras.utils.set_random_seed(0)
    with plan.scope():
        model = ViT(
            image_size=8, patch_size=4, in_channels=1, num_classes=3, embed_dim=16, depth=1, num_heads=2, mlp_dim=32
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
    images, labels = tiny_dataset()
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = plan.shard(dataset.batch(plan.global_batch, drop_remainder=True))
    history = model.fit(dataset, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return model, history


def weights_of(model):
    return [np.asarray(keras_value(w)) for w in model.weights]


def keras_value(variable):
    import keras

    return keras.ops.convert_to_numpy(variable.value)


def equivalence(args):
    import keras

    from vit_keras.distribute import setup_distribution, simulate_cpu_devices

    simulate_cpu_devices(2)
    single, single_history = train(setup_distribution("none", global_batch=GLOBAL_BATCH), args.epochs)
    try:
        setup_distribution("data-parallel", global_batch=GLOBAL_BATCH - 3)
        batch_error = None
    except ValueError as error:
        batch_error = str(error)
    plan = setup_distribution("data-parallel", global_batch=GLOBAL_BATCH)
    parallel, parallel_history = train(plan, args.epochs)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(weights_of(single), weights_of(parallel)))
    return {
        "backend": keras.backend.backend(),
        "num_replicas": plan.num_replicas,
        "per_device_batch": plan.per_device_batch,
        "single_loss": single_history.history["loss"],
        "parallel_loss": parallel_history.history["loss"],
        "max_weight_diff": diff,
        "batch_error": batch_error,
    }


class DieAfterEpoch:
    """A callback that ends the process like a lost machine would, after `epoch` epochs."""

    def __new__(cls, epoch):
        import keras

        class _Die(keras.callbacks.Callback):
            def on_epoch_end(self, index, logs=None):
                if index + 1 == epoch:
                    sys.stdout.flush()
                    os._exit(3)

        return _Die()


def worker(args):
    import keras

    from vit_keras.distribute import setup_distribution

    plan = setup_distribution("multi-worker", global_batch=GLOBAL_BATCH)
    callbacks = [plan.backup_callback(args.backup_dir)]
    if plan.is_chief:
        os.makedirs(args.run_dir, exist_ok=True)
        callbacks.append(keras.callbacks.CSVLogger(os.path.join(args.run_dir, "log.csv")))
    if args.die_after_epoch:
        callbacks.append(DieAfterEpoch(args.die_after_epoch))
    model, history = train(plan, args.epochs, callbacks)
    saved = plan.output_path(os.path.join(args.run_dir, "final.weights.h5"))
    model.save_weights(saved)
    np.savez(args.out + ".npz", *weights_of(model))
    report = {
        "backend": keras.backend.backend(),
        "is_chief": plan.is_chief,
        "worker_index": plan.worker_index,
        "num_workers": plan.num_workers,
        "num_replicas": plan.num_replicas,
        "epochs_run": history.epoch,
        "loss": history.history["loss"],
    }
    return report, None if plan.is_chief else os.path.dirname(saved)


def skip_unused_imports():
    """Make `import` of the optional packages the workers never use fail fast (`ImportError`)."""
    unused = ["matplotlib"] + (["jax"] if os.environ.get("KERAS_BACKEND") == "tensorflow" else [])
    for name in unused:
        sys.modules.setdefault(name, None)


def exit_now(scratch_dir=None):
    """On TensorFlow, end the process after its report is written, skipping the interpreter's teardown.

    `scratch_dir` (a non-chief worker's private output directory) is removed first. On JAX the
    process exits normally: its processes leave their multi-process group together at exit.
    """
    if os.environ.get("KERAS_BACKEND") != "tensorflow":
        return
    if scratch_dir:
        shutil.rmtree(scratch_dir, ignore_errors=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main():
    skip_unused_imports()
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=["equivalence", "worker"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--run-dir")
    parser.add_argument("--backup-dir")
    parser.add_argument("--die-after-epoch", type=int, default=0)
    args = parser.parse_args()
    report, scratch_dir = (equivalence(args), None) if args.task == "equivalence" else worker(args)
    with open(args.out, "w") as f:
        json.dump(report, f)
    exit_now(scratch_dir)


if __name__ == "__main__":
    main()
