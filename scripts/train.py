"""Train a ViT: a thin wrapper of `vit-keras train` (same arguments; see `--help`).

    .venv/bin/python scripts/train.py --dataset mnist --data-dir ../shared/data/mnist --epochs 30
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from vit_keras.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
