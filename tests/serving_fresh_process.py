"""Run a SavedModel's serving signatures in a process that never imports keras or vit_keras.

    python tests/serving_fresh_process.py SAVED_MODEL_DIR INPUTS.npz OUTPUTS.npz

INPUTS.npz holds `images` (uint8, (N, H, W, C)). For each signature and batch this writes the
outputs to OUTPUTS.npz as `<case>/<output name>`, plus `modules`: the keras / vit_keras modules
that were imported (must be none). TensorFlow imports keras when it can (for `tf.keras`), so
keras is blocked before TensorFlow is imported: the SavedModel must load and run without it.
"""

import sys

for _blocked in ("keras", "tf_keras", "vit_keras"):
    sys.modules[_blocked] = None  # `import keras` now fails; TensorFlow runs without tf.keras

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(saved_model_dir, inputs_path, outputs_path):
    images = np.load(inputs_path)["images"]
    loaded = tf.saved_model.load(saved_model_dir)
    png = tf.constant([tf.io.encode_png(image).numpy() for image in images])
    # 2x nearest-neighbour upsampling: the in-graph bilinear resize must give the originals back.
    big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)
    png_big = tf.constant([tf.io.encode_png(image).numpy() for image in big])
    cases = {
        "float": ("serving_default", {"images": tf.constant(images.astype(np.float32))}),
        "float_batch1": ("serving_default", {"images": tf.constant(images[:1].astype(np.float32))}),
        "uint8": ("serving_uint8", {"images": tf.constant(images)}),
        "png": ("serving_bytes", {"image_bytes": png}),
        "png_batch1": ("serving_bytes", {"image_bytes": png[:1]}),
        "png_resized": ("serving_bytes", {"image_bytes": png_big}),
        "float_empty": ("serving_default", {"images": tf.zeros((0,) + images.shape[1:], tf.float32)}),
        "uint8_empty": ("serving_uint8", {"images": tf.zeros((0,) + images.shape[1:], tf.uint8)}),
        "png_empty": ("serving_bytes", {"image_bytes": tf.constant([], tf.string)}),
    }
    results = {}
    for case, (signature, feed) in cases.items():
        for name, value in loaded.signatures[signature](**feed).items():
            results[f"{case}/{name}"] = value.numpy()
    imported = sorted(
        m
        for m, module in sys.modules.items()
        if module is not None and m.split(".")[0] in ("keras", "tf_keras", "vit_keras")
    )
    results["modules"] = np.array(imported, dtype=object)
    np.savez(outputs_path, **results)


if __name__ == "__main__":
    main(*sys.argv[1:4])
