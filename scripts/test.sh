#!/usr/bin/env bash
# Run the test suite on the TensorFlow, JAX and PyTorch backends (installs into ./.venv first).
# Tests marked `single_backend` (pure data / CLI plumbing) run on TensorFlow only.
#
# The suite is cut into jobs (one pytest each: a backend, a marker expression and test paths).
# With two or more cores, two lanes take the next unstarted job of the list whenever they finish
# one, so both lanes end at about the same time; most tests are single-threaded
# (small models, XLA compiles). Each job's log is printed when it ends; at the end a table gives
# every job's lane, wall time and exit status, and each lane's wall time.
# VIT_KERAS_TEST_LANES=1 runs the jobs one after another. Extra arguments go to every pytest;
# with extra arguments the jobs are one per backend and marker (no split by file).
#
# The jobs are listed longest first (a clean CI run on 2 cores: TensorFlow single_backend 11.7 min,
# TensorFlow 13.1, JAX models 5.2, JAX rest 12.6, PyTorch 4.6, test_readme 4.6); the lanes start the
# first two and then take the rest in order, so they end within minutes of each other (lanes of
# 25.7 and 26.1 min in that run, with the VM in its slower state; 29 min in all with the install;
# about 20 min in its faster state).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh || exit 1
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1

# Lint and format check first (ruff, configured in pyproject.toml): seconds, and it fails fast.
.venv/bin/ruff check . && .venv/bin/ruff format --check . || { echo "ruff: fix the findings above (ruff format . ; ruff check --fix .)"; exit 1; }

README_TEST=tests/test_readme.py
# JAX's tests in two halves: the model-level tests (many tiny models, each one XLA compile) with
# the multi-process distribution tests, and the others.
JAX_MODEL_TESTS="tests/test_model.py tests/test_layers.py tests/test_presets.py tests/test_serialization.py
  tests/test_parity.py tests/test_pretrained.py tests/test_legacy_vit.py tests/test_distribute.py"
JOBS=()  # "name|backend|marker expression|paths (space separated; empty: pyproject's testpaths)"
if [ $# -eq 0 ]; then
  JOBS=(
    "tensorflow single_backend|tensorflow|single_backend|--ignore=$README_TEST"
    "tensorflow|tensorflow|not single_backend|"
    "jax models|jax|not single_backend|$(echo $JAX_MODEL_TESTS)"
    "jax|jax|not single_backend|$(printf -- '--ignore=%s ' $JAX_MODEL_TESTS)"
    "torch|torch|not single_backend|"
    "tensorflow readme|tensorflow|single_backend|$README_TEST"
  )
else
  JOBS=(
    "jax|jax|not single_backend|"
    "tensorflow|tensorflow|not single_backend|"
    "tensorflow single_backend|tensorflow|single_backend|"
    "torch|torch|not single_backend|"
  )
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

run_job() {  # run_job INDEX [pytest args...]: one pytest; writes its wall time and status
  local index=$1 name backend marks paths start status
  shift
  IFS='|' read -r name backend marks paths <<< "${JOBS[$index]}"
  start=$SECONDS
  echo "=== KERAS_BACKEND=$backend -m '$marks' ${paths:-tests} ($name)"
  # shellcheck disable=SC2086  # paths: a space-separated list
  KERAS_BACKEND=$backend .venv/bin/python -m pytest -q --durations=10 -m "$marks" $paths "$@"
  status=$?
  [ $status = 5 ] && status=0  # no test of these paths runs on this backend (e.g. a single_backend file)
  echo "$name|$((SECONDS - start))|$status" > "$logs/job.$index.result"
  return $status
}

lane() {  # lane NUMBER [pytest args...]: take unstarted jobs in list order until none is left
  local number=$1 index start=$SECONDS
  shift
  for index in "${!JOBS[@]}"; do
    mkdir "$logs/claim.$index" 2>/dev/null || continue  # mkdir is atomic: one lane per job
    if [ "$lanes" = 1 ]; then
      run_job "$index" "$@"
    else
      run_job "$index" "$@" > "$logs/job.$index.log" 2>&1
      { flock 9; cat "$logs/job.$index.log"; } 9> "$logs/print.lock"
    fi
    echo "$number" > "$logs/job.$index.lane"
  done
  echo "$((SECONDS - start))" > "$logs/lane.$number.seconds"
}

lanes=${VIT_KERAS_TEST_LANES:-$(( $(nproc) >= 2 ? 2 : 1 ))}
[ "$lanes" = 1 ] || lanes=2
echo "Running ${#JOBS[@]} pytest jobs in $lanes lane(s); each job's log follows when it ends"
for number in $(seq 1 "$lanes"); do
  lane "$number" "$@" &
done
wait

status=0
echo "=== jobs: lane, wall time, exit status"
for index in "${!JOBS[@]}"; do
  if [ -f "$logs/job.$index.result" ]; then
    IFS='|' read -r name seconds code < "$logs/job.$index.result"
  else
    name=${JOBS[$index]%%|*} seconds=- code=missing
  fi
  printf '%-28s lane %s  %6s s  status %s\n' "$name" "$(cat "$logs/job.$index.lane" 2>/dev/null || echo -)" "$seconds" "$code"
  [ "$code" = 0 ] || status=1
done
for number in $(seq 1 "$lanes"); do
  echo "lane $number: $(cat "$logs/lane.$number.seconds" 2>/dev/null || echo -) s"
done
exit $status
