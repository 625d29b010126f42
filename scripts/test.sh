#!/usr/bin/env bash
# Run the test suite on the TensorFlow, JAX and PyTorch backends (installs into ./.venv first).
# Tests marked `single_backend` (pure data / CLI plumbing) run on TensorFlow only.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh || exit 1
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
status=0
for backend in tensorflow jax torch; do
  echo "=== KERAS_BACKEND=$backend"
  if [ "$backend" = tensorflow ]; then marks=""; else marks="not single_backend"; fi
  KERAS_BACKEND=$backend .venv/bin/python -m pytest -q --durations=10 -m "$marks" "$@" || status=1
done
exit $status
