"""`hf://ORG/NAME[@REVISION]` sources: a Hugging Face Hub snapshot, through `huggingface_hub`.

Only one weight format is downloaded: the repository's file list at that revision decides it,
safetensors (`model.safetensors`, or its shard index and shards) when the repository has it, else
PyTorch's `pytorch_model.bin` (or its shard index and shards). A repository that holds both
would otherwise cost two downloads of the same weights (2 x 350 MB for a ViT-B).

The snapshot lands in the hub's own cache ($HF_HUB_CACHE, default ~/.cache/huggingface/hub),
so a second load, one with `HF_HUB_OFFLINE=1`, or one while the Hub cannot be reached, reads it
from there without the network.
"""

import os
import pathlib
import re

from vit_keras.pretrained.files import DIRECTORY_FILES, CheckpointError, one_line

HUB_PREFIX = "hf://"
# What a ViT snapshot needs besides its weights: the architecture, head count and labels
# (config.json) and the input normalisation (preprocessor_config.json).
CONFIG_FILES = ["config.json", "preprocessor_config.json"]
# One weight format each: (single file, index of a sharded checkpoint, the index's shards).
SAFETENSORS_FILES = ("model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors")
PYTORCH_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*-of-*.bin")
# In order of preference: only the first format a repository holds is downloaded.
WEIGHT_FORMATS = (SAFETENSORS_FILES, PYTORCH_FILES)
WEIGHT_FILES = [pattern for weight_format in WEIGHT_FORMATS for pattern in weight_format]
# One part of a Hub repository id, as huggingface_hub's `validate_repo_id` accepts it.
_REPO_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
NO_WEIGHTS = "holds no model.safetensors or pytorch_model.bin (nor a shard index)"


def is_hub_source(source):
    return isinstance(source, str) and source.startswith(HUB_PREFIX)


def _offline():
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def parse_hub_source(source):
    """(repo_id, revision or None) of `hf://ORG/NAME[@REVISION]`; ValueError for another form."""
    repo, _, revision = source[len(HUB_PREFIX) :].partition("@")
    parts = repo.split("/")
    if len(parts) != 2 or not all(_REPO_PART.match(part) for part in parts) or ".." in repo:
        raise ValueError(
            f"source must be hf://ORG/NAME or hf://ORG/NAME@REVISION (letters, digits, '-', '_' and '.'); "
            f"found {source!r}."
        )
    return repo, revision or None


def weight_patterns(repo_files):
    """The file patterns of the one weight format to download from a repository holding `repo_files`.

    Safetensors comes before PyTorch `.bin`; within a format, the single file before a shard index
    and its shards (the order in which a snapshot folder is read, see `files.DIRECTORY_FILES`).

    Args:
        repo_files: the repository's file names (paths relative to its root).

    Returns:
        A list of `allow_patterns` for `huggingface_hub.snapshot_download`, or None when the
        repository holds neither format.

    Example:
        >>> weight_patterns(["config.json", "model.safetensors", "pytorch_model.bin"])
        ['model.safetensors']
        >>> weight_patterns(["pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin"])
        ['pytorch_model.bin.index.json', 'pytorch_model-*-of-*.bin']
    """
    names = set(repo_files)
    for single, index, shards in WEIGHT_FORMATS:
        if single in names:
            return [single]
        if index in names:
            return [index, shards]
    return None


def _import_hub(source):
    try:
        import huggingface_hub
        import huggingface_hub.constants
        import huggingface_hub.errors
    except ImportError as error:
        raise ImportError(f"loading {source} needs huggingface_hub: pip install huggingface_hub") from error
    return huggingface_hub


def _request_errors(hub):
    """What a failed Hub request raises: huggingface_hub's HTTP error, the HTTP client's error class
    it derives from (httpx's or requests'), under which connection errors and timeouts fall, and OSError."""
    http_error = hub.errors.HfHubHTTPError
    return (http_error, OSError, *http_error.__bases__)


def _cache_folder(hub, cache_dir):
    return cache_dir or hub.constants.HF_HUB_CACHE


def _repo_files(hub, repo_id, revision):
    """The file names of the repository at `revision`, from the Hub (one request, no file contents)."""
    info = hub.HfApi().model_info(repo_id, revision=revision, files_metadata=False)
    return [sibling.rfilename for sibling in info.siblings or ()]


def _cached_weight_patterns(hub, repo_id, revision, cache_dir):
    """`weight_patterns` of the file list that an earlier download left in the cache, or None
    when there is none (then huggingface_hub checks no snapshot for completeness either)."""
    cached_tree = getattr(hub, "get_cached_repo_tree", None)  # older huggingface_hub caches no file list
    if cached_tree is None:
        return None
    try:
        files = cached_tree(repo_id, revision=revision, cache_dir=cache_dir)
    except hub.errors.CachedRepoTreeNotFoundError:
        return None
    return weight_patterns(file.path for file in files)


def _download(hub, source, repo_files, cache_dir):
    """The snapshot folder of `source` with its configs and one weight format of `repo_files`."""
    repo_id, revision = parse_hub_source(source)
    weights = weight_patterns(repo_files)
    if weights is None:
        raise CheckpointError(
            f"{source}: the repository {NO_WEIGHTS}; it holds {sorted(repo_files)[:10]}. Nothing was downloaded."
        )
    try:
        return hub.snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=CONFIG_FILES + weights
        )
    except _request_errors(hub) as error:
        raise OSError(f"could not download {source}: {one_line(error)}") from None


def _cached_snapshot(hub, source, cache_dir, failure=None):
    """The snapshot folder of `source` in the cache, without the network.

    `failure` is the error that fetching the repository's file list raised (None: HF_HUB_OFFLINE
    is set, the Hub was not asked); it is named when the cache has no snapshot either.
    """
    repo_id, revision = parse_hub_source(source)
    weights = _cached_weight_patterns(hub, repo_id, revision, cache_dir) or WEIGHT_FILES
    try:
        return hub.snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=CONFIG_FILES + weights,
            local_files_only=True,
        )
    except _request_errors(hub) as error:  # LocalEntryNotFoundError among them: no (complete) snapshot
        missing = f"no snapshot of {repo_id} is in the Hugging Face cache ({_cache_folder(hub, cache_dir)})"
        if isinstance(error, getattr(hub.errors, "IncompleteSnapshotError", ())):
            missing = f"the snapshot of {repo_id} in the Hugging Face cache lacks files: {one_line(error)}"
        if failure is not None:
            raise OSError(f"could not download {source}: {one_line(failure)}; {missing}.") from None
        if isinstance(error, hub.errors.LocalEntryNotFoundError):
            message = f"{source}: HF_HUB_OFFLINE is set and {missing}; download it once online."
            raise FileNotFoundError(message) from None
        raise OSError(f"could not read {source} from the Hugging Face cache: {one_line(error)}") from None


def _config_snapshot(hub, source, cache_dir):
    """The snapshot folder of `source` with its configs only (for a model built without weights)."""
    repo_id, revision = parse_hub_source(source)
    try:
        return hub.snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=CONFIG_FILES, local_files_only=_offline()
        )
    except hub.errors.LocalEntryNotFoundError:
        where = "HF_HUB_OFFLINE is set and " if _offline() else "the Hub cannot be reached and "
        raise FileNotFoundError(
            f"{source}: {where}no snapshot of {repo_id} is in the Hugging Face cache ({_cache_folder(hub, cache_dir)})."
        ) from None
    except _request_errors(hub) as error:
        raise OSError(f"could not download {source}: {one_line(error)}") from None


def hub_snapshot(source, cache_dir=None, weights=True):
    """The local folder of the Hub snapshot `source`: its configs and one weight format.

    Online, the repository's file list at the revision decides the weight format (safetensors,
    else PyTorch `.bin`; see `weight_patterns`) and only those files are downloaded, once; later
    loads find them in the cache. With `HF_HUB_OFFLINE=1`, or when the file list cannot be
    fetched (the Hub is down or answers an error), the cached snapshot is read.

    Args:
        source: "hf://ORG/NAME" or "hf://ORG/NAME@REVISION".
        cache_dir: the hub cache folder (default: huggingface_hub's, i.e. $HF_HUB_CACHE).
        weights: False to fetch the configs alone (a model built without its weights).

    Returns:
        The snapshot folder (a `pathlib.Path`) holding `config.json` and the weight files.

    Raises:
        ValueError: for a source of another form than hf://ORG/NAME[@REVISION].
        ImportError: without `huggingface_hub` (pip install "vit-keras3[hub]").
        CheckpointError: when the repository (or its cached snapshot) holds no weights of either
            format; online, this is found before anything is downloaded.
        FileNotFoundError: offline (HF_HUB_OFFLINE=1) with no cached snapshot.
        OSError: when the Hub cannot be reached or a download fails, and the cache has no snapshot.

    Example:
        >>> folder = hub_snapshot("hf://google/vit-base-patch16-224")  # doctest: +SKIP
        >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
        ['config.json', 'model.safetensors', 'preprocessor_config.json']
    """
    repo_id, revision = parse_hub_source(source)
    hub = _import_hub(source)
    if not weights:
        return pathlib.Path(_config_snapshot(hub, source, cache_dir))
    if _offline():
        folder = _cached_snapshot(hub, source, cache_dir)
    else:
        try:
            repo_files = _repo_files(hub, repo_id, revision)
        except _request_errors(hub) as error:
            folder = _cached_snapshot(hub, source, cache_dir, failure=error)
        else:
            folder = _download(hub, source, repo_files, cache_dir)
    folder = pathlib.Path(folder)
    if not any((folder / name).is_file() for name in DIRECTORY_FILES):
        raise CheckpointError(f"{source}: the snapshot {folder} {NO_WEIGHTS}.")
    return folder
