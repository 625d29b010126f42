#!/usr/bin/env bash
# The main job on a fresh machine: install, then train a ViT on the bundled MNIST sample,
# evaluate it and export a SavedModel (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export TF_CPP_MIN_LOG_LEVEL=3
exec .venv/bin/vit-keras train "$@"
