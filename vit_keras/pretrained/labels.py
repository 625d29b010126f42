"""Class names of the published heads, shipped with the package (no download).

`assets/imagenet1k_classes.txt` holds the 1,000 ImageNet-1k classes in head order as
`WordNet id <TAB> name`, copied from tensorflow-datasets 4.9.10 (Apache-2.0): the ids from
`tensorflow_datasets/datasets/imagenet2012/labels.txt`, the names from `IMAGENET_LABELS_LIST`
in `tensorflow_datasets/datasets/siscore/labels.py` (the names the older vit-keras library's
`get_imagenet_classes()` returned, with "crane (bird)" / "crane (machine)" told apart).
"""

import functools
import pathlib

ASSET = pathlib.Path(__file__).resolve().parent.parent / "assets" / "imagenet1k_classes.txt"


@functools.lru_cache(maxsize=1)
def _imagenet_rows():
    rows = [line.split("\t") for line in ASSET.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    if len(rows) != 1000 or any(len(row) != 2 for row in rows):
        raise RuntimeError(f"{ASSET} is damaged: expected 1000 'id<TAB>name' lines; reinstall vit_keras.")
    return tuple(rows)


def imagenet_classes():
    """The 1,000 ImageNet-1k class names, index i naming output i of an ImageNet-1k head."""
    return [name for _, name in _imagenet_rows()]


def imagenet_synsets():
    """The 1,000 ImageNet-1k WordNet ids (e.g. "n01440764"), in head order."""
    return [wnid for wnid, _ in _imagenet_rows()]


def label_set_names(label_set):
    """The class names of a registry label set ("imagenet1k"), or None for one not shipped."""
    return imagenet_classes() if label_set == "imagenet1k" else None
