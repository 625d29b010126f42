"""`hf://ORG/NAME[@REVISION]` sources: a Hugging Face Hub snapshot, through `huggingface_hub`.

The snapshot lands in the hub's own cache ($HF_HUB_CACHE, default ~/.cache/huggingface/hub),
so a second load, or one with `HF_HUB_OFFLINE=1`, reads it from there without the network.
"""

import os
import pathlib

from vit_keras.pretrained.files import DIRECTORY_FILES, CheckpointError, one_line

HUB_PREFIX = "hf://"
# What a ViT snapshot needs: its configs (architecture, head count, labels, input normalisation)
# and its weights, in one file or in shards with their index.
CONFIG_FILES = ["config.json", "preprocessor_config.json"]
WEIGHT_FILES = [
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "pytorch_model-*-of-*.bin",
]
SNAPSHOT_FILES = CONFIG_FILES + WEIGHT_FILES


def is_hub_source(source):
    return isinstance(source, str) and source.startswith(HUB_PREFIX)


def _offline():
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def parse_hub_source(source):
    """(repo_id, revision or None) of `hf://ORG/NAME[@REVISION]`; ValueError for another form."""
    repo, _, revision = source[len(HUB_PREFIX) :].partition("@")
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"source must be hf://ORG/NAME or hf://ORG/NAME@REVISION; found {source!r}.")
    return repo, revision or None


def hub_snapshot(source, cache_dir=None):
    """The local folder of the Hub snapshot `source` (downloaded once, then read from the cache).

    Args:
        source: "hf://ORG/NAME" or "hf://ORG/NAME@REVISION".
        cache_dir: the hub cache folder (default: huggingface_hub's, i.e. $HF_HUB_CACHE).

    Raises:
        ImportError: without `huggingface_hub` (pip install "vit-keras3[hub]").
        FileNotFoundError: offline (HF_HUB_OFFLINE=1) with no cached snapshot.
        OSError: when the download fails.
    """
    repo_id, revision = parse_hub_source(source)
    try:
        import huggingface_hub
    except ImportError as error:
        raise ImportError(f"loading {source} needs huggingface_hub: pip install huggingface_hub") from error
    offline = _offline()
    try:
        folder = huggingface_hub.snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=SNAPSHOT_FILES,
            local_files_only=offline,
        )
    except huggingface_hub.errors.LocalEntryNotFoundError:
        where = "HF_HUB_OFFLINE is set and " if offline else ""
        raise FileNotFoundError(
            f"{source}: {where}no snapshot of {repo_id} is in the Hugging Face cache "
            f"({cache_dir or huggingface_hub.constants.HF_HUB_CACHE}); download it once online."
        ) from None
    except (huggingface_hub.errors.HfHubHTTPError, OSError) as error:
        raise OSError(f"could not download {source}: {one_line(error)}") from None
    folder = pathlib.Path(folder)
    if not any((folder / name).is_file() for name in DIRECTORY_FILES):
        raise CheckpointError(
            f"{source}: the snapshot {folder} holds no model.safetensors or pytorch_model.bin (nor a shard index)."
        )
    return folder
