"""Fetch a checkpoint URL into the cache, all or nothing, checking its sha256.

A download is written to a temporary `.part` file next to its cache entry and moved into place
(one atomic rename) only once it is complete: every byte the server announced arrived, the file is
a checkpoint container (not an HTML error page or a truncated archive) and, with `sha256`, its
digest matches. A download that fails, is interrupted or is killed leaves no cache entry; the
`.part` files of processes that no longer run are removed by the next download of the same file.
A cached file that is not a complete checkpoint is downloaded again.
"""

import hashlib
import http.client
import logging
import os
import pathlib
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request

import keras

from vit_keras.pretrained.files import CheckpointError, check_complete, checked_sha256, one_line, sha256_of

log = logging.getLogger("vit_keras")

CACHE_SUBDIR = "vit_keras"
URL_SCHEMES = ("http://", "https://", "file://")
# Seconds a connection may wait for the server (to connect, or for the next bytes) before the
# download fails: a server that stops sending never hangs a load.
TIMEOUT_S = 60
_CHUNK = 1 << 20


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


def _cache_folder(cache_dir, cache_subdir):
    """The folder the cache entry goes to, created; a one-line OSError if it cannot be written."""
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be a folder path or None; found {cache_dir!r}.")
    folder = pathlib.Path(os.path.expanduser(cache_dir or default_cache_dir()), cache_subdir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(
            f"cache_dir {folder.parent} cannot hold the download cache ({one_line(error, 120)}); "
            "pass another cache_dir or set VIT_KERAS_CACHE."
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            f"the download cache {folder} is not writable; pass another cache_dir or set VIT_KERAS_CACHE."
        )
    return folder


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _remove_stale_parts(folder, fname):
    """Delete the `.part` files of `fname` that processes which no longer run left behind."""
    pattern = re.compile(rf"^\.{re.escape(fname)}\.(\d+)-[0-9a-f]+\.part$")
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match and not _pid_alive(int(match.group(1))):
            path.unlink(missing_ok=True)


def _fetch(url, part):
    """Write the body at `url` to `part`; a one-line OSError unless every announced byte arrived."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            progress = keras.utils.Progbar(expected, unit_name="byte") if expected else None
            received = 0
            with open(part, "wb") as out:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress.update(min(received, expected))
    except urllib.error.HTTPError as error:
        raise OSError(f"could not download {url}: the server answered HTTP {error.code} {error.reason}.") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        raise OSError(f"could not download {url}: {type(reason).__name__}: {one_line(reason, 120)}.") from None
    if expected is not None and received != expected:
        raise OSError(f"could not download {url}: the server announced {expected} bytes and sent {received}.")


def _fetch_into_cache(url, target, sha256):
    """Download `url` to a `.part` file beside `target`, check it, then rename it to `target`."""
    part = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
    log.info("downloading %s to %s", url, target)
    try:
        _fetch(url, part)
        try:
            check_complete(part)
        except CheckpointError as error:
            problem = str(error).replace(f"{part}", "it").split(": delete it")[0]
            problem = one_line(problem, 160)
            raise CheckpointError(
                f"the file downloaded from {url} is no complete checkpoint: {problem}; nothing was cached."
            ) from None
        found = sha256_of(part) if sha256 is not None else None
        if found != sha256:
            raise CheckpointError(
                f"sha256 of the file downloaded from {url} does not match: expected {sha256}, found "
                f"{found}; nothing was cached."
            )
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def _cached(target, sha256):
    """True if `target` is a complete cached checkpoint (with `sha256`, one of that digest)."""
    if not target.is_file():
        return False
    try:
        check_complete(target)
    except CheckpointError as error:
        log.warning("%s; downloading it again.", one_line(error, 160))
        return False
    if sha256 is not None and sha256_of(target) != sha256:
        log.warning("%s does not have the sha256 %s; downloading it again.", target, sha256)
        return False
    return True


def download(url, sha256=None, cache_dir=None, fname=None, cache_subdir=CACHE_SUBDIR):
    """Download `url` into the cache (once) and return the local path.

    Args:
        url: an http(s):// or file:// URL of a checkpoint file.
        sha256: its expected SHA-256 hex digest, or None.
        cache_dir: the cache root (default: `default_cache_dir()`); the file goes to
            `cache_dir/cache_subdir/fname`.
        fname: the cache file name (default: `cache_name(url)`).
        cache_subdir: the folder under `cache_dir`.

    Returns:
        The cached file's `pathlib.Path`.

    Raises:
        ValueError: a `sha256` that is not 64 hex digits.
        CheckpointError: the download is no complete checkpoint (an HTML page, a truncated
            archive) or does not match `sha256`; nothing is cached.
        OSError: the server cannot be reached, answers an HTTP error, stops sending for
            `TIMEOUT_S` seconds or sends fewer bytes than it announced, or the cache folder
            cannot be written; nothing is cached.

    A cached file that is not a complete checkpoint, or (with `sha256`) does not match, is
    downloaded again.
    """
    sha256 = checked_sha256(sha256)
    folder = _cache_folder(cache_dir, cache_subdir)
    target = folder / (fname or cache_name(url))
    if _cached(target, sha256):
        return target
    _remove_stale_parts(folder, target.name)
    _fetch_into_cache(url, target, sha256)
    return target
