"""Fetch a checkpoint URL into the Keras cache with `keras.utils.get_file`, checking its sha256."""

import hashlib
import os
import pathlib
import urllib.parse

import keras

from vit_keras.pretrained.files import CheckpointError, check_sha256, sha256_of

CACHE_SUBDIR = "vit_keras"
URL_SCHEMES = ("http://", "https://", "file://")


def is_url(source):
    return isinstance(source, str) and source.lower().startswith(URL_SCHEMES)


def cache_name(url):
    """A cache file name unique to `url`: `<8 hex of its sha1>_<file name>`.

    Google's releases reuse names across folders (imagenet21k/ViT-B_16.npz and
    imagenet21k+imagenet2012/ViT-B_16.npz), Hugging Face snapshots are all `model.safetensors`.
    """
    base = os.path.basename(urllib.parse.urlsplit(url).path) or "checkpoint"
    return f"{hashlib.sha1(url.encode()).hexdigest()[:8]}_{base}"


def default_cache_dir():
    """$VIT_KERAS_CACHE, else $KERAS_HOME, else ~/.keras (read at each call)."""
    return os.environ.get("VIT_KERAS_CACHE") or os.environ.get("KERAS_HOME") or "~/.keras"


def download(url, sha256=None, cache_dir=None, fname=None, cache_subdir=CACHE_SUBDIR):
    """Download `url` (cached) and return the local path.

    `cache_dir` defaults to `default_cache_dir()`. With `sha256`, a cached file that does
    not match is fetched again, and a download that does not match is deleted and raises
    a CheckpointError.
    """
    fname = fname or cache_name(url)
    sha256 = None if sha256 is None else str(sha256).strip().lower()
    cache_dir = os.path.expanduser(cache_dir or default_cache_dir())
    os.makedirs(cache_dir, exist_ok=True)  # else get_file falls back to /tmp/.keras
    try:
        path = keras.utils.get_file(
            fname=fname,
            origin=url,
            file_hash=sha256,
            hash_algorithm="sha256",
            cache_dir=cache_dir,
            cache_subdir=cache_subdir,
        )
    except ValueError as error:
        if "hash" not in str(error):
            raise
        found = None
        # get_file falls back to /tmp/.keras when the cache is not writable
        for root in (cache_dir, os.path.join("/tmp", ".keras")):
            target = pathlib.Path(root, cache_subdir, fname)
            if target.exists():
                found = sha256_of(target)
                target.unlink()  # never leave an unverified file where the next load would take it
                break
        raise CheckpointError(
            f"sha256 of the file downloaded from {url} does not match: expected {sha256}, found {found}."
        ) from error
    except Exception as error:
        raise OSError(f"could not download the checkpoint {url}: {error}") from error
    if sha256 is not None:  # get_file checks too; this also covers its "md5 or sha256" guess
        check_sha256(path, sha256)
    return pathlib.Path(path)
