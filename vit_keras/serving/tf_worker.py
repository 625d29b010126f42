"""Write a `.keras` model as a serving SavedModel (or ONNX file) in a TensorFlow-backend process.

    KERAS_BACKEND=tensorflow python vit_keras/serving/tf_worker.py MODEL.keras OUTPUT \
        [--options-json '{"class_names": ["a", "b"], "top_k": 5, "format": "saved_model"}'] \
        [--parent-pid PID]

`vit_keras.export_saved_model` and `vit_keras.export_onnx` run this when the model lives under JAX
or PyTorch: the `.keras` file holds the architecture and weights independently of the backend, so
the model rebuilt here computes the same function, and the exported graph is the same whatever
backend trained it. The options are `vit_keras.export.write_in_tensorflow`'s keyword arguments.
When the export fails, the last line on stderr is the error in one line (`Type: message`), after
its traceback; the parent reports that line.

With `--parent-pid`, the worker dies with that process: on Linux the kernel sends it SIGKILL when
its parent exits (`prctl(PR_SET_PDEATHSIG)`), elsewhere a thread polls the parent's id; and if the
parent is already gone when the worker starts, it exits at once. It is run as a file (not with
`-m`, which imports the package and so Keras first), so this is asked for before anything heavy
is imported.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _kill_on_parent_death():
    """Ask Linux to SIGKILL this process when its parent exits; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid, interval=1.0):
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(interval)


def die_with_parent(parent_pid):
    """End this process when `parent_pid` (its parent) exits, from now on or already."""
    watched = _kill_on_parent_death()
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)
    if not watched:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .keras file")
    parser.add_argument("output", help="the SavedModel folder (or ONNX file) to create")
    parser.add_argument("--options-json", default="{}", help="write_in_tensorflow's keyword arguments")
    parser.add_argument("--parent-pid", type=int, help="exit when this process (the parent) exits")
    args = parser.parse_args(argv)
    if args.parent_pid is not None:
        die_with_parent(args.parent_pid)

    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras

    if keras.backend.backend() != "tensorflow":  # keras was imported before the variable was set
        sys.exit(f"tf_worker needs the TensorFlow backend; found {keras.backend.backend()!r}.")
    from vit_keras.export import write_in_tensorflow
    from vit_keras.runs import load_keras_file

    try:
        write_in_tensorflow(load_keras_file(args.model), args.output, **json.loads(args.options_json))
    except Exception as error:  # the parent reports the last line of stderr: make it the error, in one line
        import traceback

        traceback.print_exc()
        message = " | ".join(line.strip() for line in str(error).splitlines() if line.strip())
        sys.exit(f"{type(error).__name__}: {message}")


if __name__ == "__main__":
    main()
