#!/usr/bin/env bash
# Create ./.venv (once) with vit_keras and everything its jobs and tests need.
# torch==2.13.0 is the CPU build; it is installed first so no other package pulls a CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || [ ! -x .venv/bin/ruff ] \
    || ! .venv/bin/python -c "import vit_keras, keras, jax, torch, tf2onnx, onnxruntime, huggingface_hub" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[test,jax]"
fi
