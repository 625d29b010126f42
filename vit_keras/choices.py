"""The allowed values of the string options of `vit-keras` and the library, as plain data.

This module imports nothing, so the command-line parser (`vit_keras.cli`) and `TrainConfig`
can offer and check these choices without loading Keras. The architectures and ViT's own
string arguments (presets, `POOLINGS`, `STEMS`, `DATA_FORMATS`, `NORMALIZATIONS`) live in
`vit_keras.architectures`; the modules that act on the choices below import them from here.
"""

# Keras backends `vit-keras --backend` can select (Keras reads it once, at import).
BACKENDS = ("tensorflow", "jax", "torch")

# Keras dtype policies `vit-keras train --precision` accepts; "auto" is resolved by
# `vit_keras.performance.resolve_precision` (bfloat16 only where it was measured faster).
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

# Training-time image augmentations of `vit_keras.data`.
AUGMENTATIONS = ("none", "shift", "digits", "natural", "randaugment")

# How `vit-keras train` spreads the work (`vit_keras.distribute`).
DISTRIBUTE_MODES = ("none", "data-parallel", "multi-worker")

# The dtype policies an export can compute in (`vit-keras export --precision`): float32 serves at
# full speed on every CPU and GPU; mixed_bfloat16 is the faster one on CPUs with AVX512_BF16 or AMX
# (XLA-compiled: `vit_keras.layers.products`) and on GPUs from Ampere on.
EXPORT_PRECISIONS = ("float32", "mixed_bfloat16")

# What `vit-keras export` writes: a TF Serving SavedModel or one ONNX file.
EXPORT_FORMATS = ("saved_model", "onnx")
