#!/usr/bin/env bash
# Run the test suite on the TensorFlow, JAX and PyTorch backends (installs into ./.venv first).
# Tests marked `single_backend` (pure data / CLI plumbing) run on TensorFlow only.
#
# With two or more cores the backends run in two lanes side by side (TensorFlow | JAX, then
# PyTorch): most tests are single-threaded (small models, XLA compiles). On CI's 2 cores a clean
# run took 1,801 s with lanes: install 2.5 min, TensorFlow lane 27 min, JAX 17.7 + PyTorch 6.4 min.
# Each lane writes its own log, printed when the lane ends. VIT_KERAS_TEST_LANES=1 runs
# the backends one after another, printing as they go. Extra arguments go to every pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh || exit 1
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1

# Lint and format check first (ruff, configured in pyproject.toml): seconds, and it fails fast.
.venv/bin/ruff check . && .venv/bin/ruff format --check . || { echo "ruff: fix the findings above (ruff format . ; ruff check --fix .)"; exit 1; }

run_backend() {
  local backend=$1 marks=""
  shift
  [ "$backend" = tensorflow ] || marks="not single_backend"
  echo "=== KERAS_BACKEND=$backend"
  KERAS_BACKEND=$backend .venv/bin/python -m pytest -q --durations=10 -m "$marks" "$@"
}

lanes=${VIT_KERAS_TEST_LANES:-$(( $(nproc) >= 2 ? 2 : 1 ))}
if [ "$lanes" = 1 ]; then
  status=0
  for backend in tensorflow jax torch; do run_backend "$backend" "$@" || status=1; done
  exit $status
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
echo "Running the backends in two lanes: tensorflow | jax, torch (logs follow as each lane ends)"
( run_backend tensorflow "$@" > "$logs/tensorflow.log" 2>&1 ) &
lane_a=$!
( status=0
  run_backend jax "$@" || status=1
  run_backend torch "$@" || status=1
  exit $status ) > "$logs/jax_torch.log" 2>&1 &
lane_b=$!
status=0
wait $lane_b || status=1
cat "$logs/jax_torch.log"
wait $lane_a || status=1
cat "$logs/tensorflow.log"
exit $status
