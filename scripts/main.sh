#!/usr/bin/env bash
# The main job on a fresh machine: install, then train a ViT on the bundled MNIST sample,
# evaluate it and export a SavedModel (see README.md). `vit-keras train` prints the test
# accuracy and where the run directory and the SavedModel went.
# The PyTorch backend unless KERAS_BACKEND says otherwise: on a 2-core AMD EPYC (AVX2) it trained
# the default model in 174 s against TensorFlow's 236 s (same run, BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export KERAS_BACKEND="${KERAS_BACKEND:-torch}"
exec .venv/bin/vit-keras train "$@"
