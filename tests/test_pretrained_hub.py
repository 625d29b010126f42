"""`hf://ORG/NAME[@REVISION]` against a Hugging Face Hub served on 127.0.0.1: one weight format is
downloaded (safetensors before PyTorch `.bin`), chosen from the repository's file list; the cache
serves later loads offline and while the Hub is down; failures are one-line errors naming the source."""

import hashlib
import http.server
import json
import re
import threading
import urllib.parse

import numpy as np
import pytest
import safetensors.numpy
from conftest import to_numpy
from test_pretrained import (
    CONFIG,
    TOLERANCE,
    build,
    huggingface_config,
    max_error,
    reference,
    save_torch,
    timm_state,
    timm_to_huggingface,
    write_sharded,
)

import vit_keras
from vit_keras.pretrained import CheckpointError, load_pretrained

hub_constants = pytest.importorskip("huggingface_hub.constants")

pytestmark = pytest.mark.usefixtures("no_network")

API_REVISION = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<revision>[^/]+))?$")
API_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<revision>[^/]+)$")
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")


class FakeHub:
    """A Hugging Face Hub at http://127.0.0.1:PORT serving in-memory repositories.

    It answers what `huggingface_hub.snapshot_download` and `HfApi.model_info` ask: the repo-info
    API (`sha`, `siblings`), the recursive tree listing, and HEAD / GET of
    `/{repo}/resolve/{revision}/{filename}` with the headers huggingface_hub checks (X-Repo-Commit,
    ETag, Content-Length). Every request is recorded as (method, path); `failure` set to a status
    code answers every request with it.
    """

    def __init__(self):
        self.repos = {}  # repo_id -> {revision name or commit: (commit, {filename: bytes})}
        self.requests = []
        self.failure = None
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, repo_id, files, revision="main"):
        """Publish `files` ({name: bytes}) as `revision` of `repo_id`; returns the revision's commit."""
        commit = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()
        revisions = self.repos.setdefault(repo_id, {})
        revisions[revision] = revisions[commit] = (commit, dict(files))
        return commit

    def fetched(self, repo_id, method="GET"):
        """The file names of `repo_id` requested from /resolve/ with `method`."""
        with self.lock:
            requests = list(self.requests)
        names = set()
        for request_method, path in requests:
            match = RESOLVE.match(path)
            if match and match["repo"] == repo_id and request_method == method:
                names.add(match["filename"])
        return names

    def stop(self):
        """Stop serving (again: a no-op); the port then refuses connections."""
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def _handler(self):
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body):
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                with hub.lock:
                    hub.requests.append((self.command, path))
                if hub.failure is not None:
                    return self._send(hub.failure, b'{"error": "the Hub is failing"}', body)
                for pattern, route in ((API_TREE, self._tree), (API_REVISION, self._info), (RESOLVE, self._file)):
                    match = pattern.match(path)
                    if match:
                        return route(match, body)
                return self._send(404, b"{}", body)

            def _revision(self, match):
                revisions = hub.repos.get(match["repo"])
                if revisions is None:
                    self._send(404, b'{"error": "Repository not found"}', True, {"X-Error-Code": "RepoNotFound"})
                    return None
                found = revisions.get(match["revision"] or "main")
                if found is None:
                    self._send(404, b'{"error": "Invalid rev id"}', True, {"X-Error-Code": "RevisionNotFound"})
                return found

            def _info(self, match, body):
                found = self._revision(match)
                if found is not None:
                    commit, files = found
                    info = {"id": match["repo"], "sha": commit, "siblings": [{"rfilename": n} for n in files]}
                    self._send(200, json.dumps(info).encode(), body)

            def _tree(self, match, body):
                found = self._revision(match)
                if found is not None:
                    entries = [
                        {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                        for name, data in found[1].items()
                    ]
                    self._send(200, json.dumps(entries).encode(), body)

            def _file(self, match, body):
                found = self._revision(match)
                if found is None:
                    return
                commit, files = found
                data = files.get(match["filename"])
                if data is None:
                    headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}
                    return self._send(404, b'{"error": "Entry not found"}', body, headers)
                etag = f'"{hashlib.sha256(data).hexdigest()}"'
                self._send(200, data, body, {"X-Repo-Commit": commit, "ETag": etag})

            def _send(self, status, data, body, headers=None):
                self.send_response(status)
                for name, value in {"Content-Type": "application/octet-stream", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

        return Handler


@pytest.fixture
def hub(monkeypatch):
    """A running `FakeHub` that huggingface_hub talks to (as `HF_ENDPOINT` would make it), online."""
    fake = FakeHub()
    monkeypatch.setattr(hub_constants, "ENDPOINT", fake.url)
    template = fake.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    yield fake
    fake.stop()


def go_offline(monkeypatch):
    """HF_HUB_OFFLINE=1, as set before starting Python (huggingface_hub reads it at import)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)


# --- repository contents -----------------------------------------------------------------------------


def huggingface_state():
    return timm_to_huggingface(timm_state())


def safetensors_bytes(state, tmp_path):
    path = tmp_path / "weights.safetensors"
    safetensors.numpy.save_file(state, str(path))
    return path.read_bytes()


def bin_bytes(state, tmp_path):
    return save_torch(state, tmp_path / "weights.bin").read_bytes()


def sharded_files(state, tmp_path, suffix, shards):
    """{name: bytes} of `state` saved as `shards` shards and their index (transformers' layout)."""
    folder = tmp_path / f"sharded{suffix}"
    write_sharded(folder, state, shards=shards, suffix=suffix)
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def other_weights():
    """The fixture's weights with another classifier: logits that tell which file was read."""
    state = huggingface_state()
    state["classifier.bias"] = state["classifier.bias"] + 1.0
    return state


def config_bytes():
    return json.dumps(huggingface_config()).encode()


EXTRAS = {".gitattributes": b"*.bin filter=lfs\n", "README.md": b"# a tiny ViT\n", "tf_model.h5": b"\x89HDF"}


def assert_one_line_naming(error, source):
    message = str(error.value)
    assert source in message and "\n" not in message, message


# --- one weight format --------------------------------------------------------------------------------


def test_repo_with_safetensors_and_bin_downloads_only_safetensors(hub, tmp_path):
    """create_model("hf://...") of a repo holding both formats fetches the configs and
    model.safetensors alone (the .bin holds other weights, so the logits show which was read)."""
    processor = {"do_rescale": True, "rescale_factor": 1 / 255, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    state = huggingface_state()
    hub.add(
        "acme/vit-both",
        {
            "config.json": config_bytes(),
            "preprocessor_config.json": json.dumps(processor).encode(),
            "model.safetensors": safetensors_bytes(state, tmp_path),
            "pytorch_model.bin": bin_bytes(other_weights(), tmp_path),
            **EXTRAS,
        },
    )
    model = vit_keras.pretrained.create_model("hf://acme/vit-both", cache_dir=tmp_path / "cache")

    assert hub.fetched("acme/vit-both") == {"config.json", "preprocessor_config.json", "model.safetensors"}
    assert "pytorch_model.bin" not in hub.fetched("acme/vit-both", method="HEAD")
    np.testing.assert_array_equal(to_numpy(model.get_layer("head").kernel), state["classifier.weight"].T)
    np.testing.assert_array_equal(to_numpy(model.get_layer("head").bias), state["classifier.bias"])
    inputs, logits = reference(CONFIG["img"])
    pixels = (inputs + 1) * 127.5  # what the model's symmetric preprocessing maps back to `inputs`
    assert float(np.abs(to_numpy(model(pixels)) - logits).max()) < TOLERANCE


@pytest.mark.single_backend
def test_repo_with_only_bin_downloads_the_bin_and_the_revision_decides(hub, tmp_path):
    """A repo with pytorch_model.bin alone downloads it; the file list of the revision asked for
    decides (a tag without safetensors, on a branch that has them, downloads the .bin)."""
    state = huggingface_state()
    hub.add("acme/vit-bin", {"config.json": config_bytes(), "pytorch_model.bin": bin_bytes(state, tmp_path), **EXTRAS})
    model = build()
    load_pretrained(model, "hf://acme/vit-bin", cache_dir=tmp_path / "cache")
    assert hub.fetched("acme/vit-bin") == {"config.json", "pytorch_model.bin"}
    assert max_error(model, CONFIG["img"]) < TOLERANCE

    hub.add("acme/vit-moved", {"config.json": config_bytes(), "pytorch_model.bin": bin_bytes(state, tmp_path)}, "v1")
    hub.add(
        "acme/vit-moved",
        {
            "config.json": config_bytes(),
            "model.safetensors": safetensors_bytes(other_weights(), tmp_path),
            "pytorch_model.bin": bin_bytes(other_weights(), tmp_path),
        },
    )
    tagged = build()
    load_pretrained(tagged, "hf://acme/vit-moved@v1", cache_dir=tmp_path / "cache")
    assert hub.fetched("acme/vit-moved") == {"config.json", "pytorch_model.bin"}
    assert max_error(tagged, CONFIG["img"]) < TOLERANCE


@pytest.mark.single_backend
def test_sharded_safetensors_repo_downloads_the_index_and_its_shards_only(hub, tmp_path):
    """Safetensors shards and .bin shards in one repo: the safetensors index and its three shards only."""
    state = huggingface_state()
    safetensors_shards = sharded_files(state, tmp_path, ".safetensors", shards=3)
    hub.add(
        "acme/vit-sharded",
        {
            "config.json": config_bytes(),
            **safetensors_shards,
            **sharded_files(other_weights(), tmp_path, ".bin", shards=2),
        },
    )
    model = build()
    load_pretrained(model, "hf://acme/vit-sharded", cache_dir=tmp_path / "cache")
    assert sorted(safetensors_shards) == [
        "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors",
        "model-00003-of-00003.safetensors",
        "model.safetensors.index.json",
    ]
    assert hub.fetched("acme/vit-sharded") == {"config.json", *safetensors_shards}
    assert max_error(model, CONFIG["img"]) < TOLERANCE


@pytest.mark.single_backend
def test_repo_without_weights_fails_in_one_line_before_any_download(hub, tmp_path):
    """No weights of either format: the one-line CheckpointError names the source and what the
    repository holds, decided from its file list before any file is requested."""
    hub.add("acme/no-weights", {"config.json": config_bytes(), **EXTRAS})
    with pytest.raises(CheckpointError, match="holds no model.safetensors or pytorch_model.bin") as error:
        load_pretrained(build(), "hf://acme/no-weights", cache_dir=tmp_path / "cache")
    assert_one_line_naming(error, "hf://acme/no-weights")
    assert "tf_model.h5" in str(error.value)  # what the repository holds instead
    assert hub.fetched("acme/no-weights") == set() and hub.fetched("acme/no-weights", "HEAD") == set()
    with pytest.raises(CheckpointError, match="hf://acme/no-weights: the repository holds no"):
        vit_keras.pretrained.create_model("hf://acme/no-weights", cache_dir=tmp_path / "cache")


# --- the cache: offline, and while the Hub fails -----------------------------------------------------


def publish_both_formats(hub, tmp_path, repo_id="acme/vit-cached"):
    state = huggingface_state()
    return hub.add(
        repo_id,
        {
            "config.json": config_bytes(),
            "model.safetensors": safetensors_bytes(state, tmp_path),
            "pytorch_model.bin": bin_bytes(other_weights(), tmp_path),
        },
    )


@pytest.mark.single_backend
def test_a_model_built_without_weights_fetches_the_configs_alone(hub, tmp_path, monkeypatch):
    """create_model("hf://...", pretrained=False) reads the architecture from config.json and
    requests no weight file; offline it builds from the cached configs without a request."""
    publish_both_formats(hub, tmp_path, repo_id="acme/vit-architecture")
    cache = tmp_path / "cache"
    model = vit_keras.pretrained.create_model("hf://acme/vit-architecture", pretrained=False, cache_dir=cache)
    assert hub.fetched("acme/vit-architecture") == {"config.json"}  # the repo has no preprocessor_config.json
    assert not hub.fetched("acme/vit-architecture", method="HEAD") & {"model.safetensors", "pytorch_model.bin"}
    assert model.get_layer("head").units == CONFIG["classes"] and model.embed_dim == CONFIG["dim"]
    assert len([layer for layer in model.layers if "block" in layer.name]) == CONFIG["depth"]
    assert max_error(model, CONFIG["img"]) > 100 * TOLERANCE  # the published weights were not loaded

    go_offline(monkeypatch)
    requests_before = len(hub.requests)
    again = vit_keras.pretrained.create_model("hf://acme/vit-architecture", pretrained=False, cache_dir=cache)
    assert again.count_params() == model.count_params() and len(hub.requests) == requests_before
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE is set and no snapshot of acme/vit-none") as error:
        vit_keras.pretrained.create_model("hf://acme/vit-none", pretrained=False, cache_dir=cache)
    assert_one_line_naming(error, "hf://acme/vit-none")


@pytest.mark.single_backend
def test_second_load_reads_the_cache_with_hf_hub_offline(hub, tmp_path, monkeypatch):
    """After one online load, HF_HUB_OFFLINE=1 loads by name, branch and commit without a request
    (the snapshot holds model.safetensors only, which the cached file list must accept)."""
    commit = publish_both_formats(hub, tmp_path)
    cache = tmp_path / "cache"
    load_pretrained(build(), "hf://acme/vit-cached", cache_dir=cache)
    assert hub.fetched("acme/vit-cached") == {"config.json", "model.safetensors"}

    go_offline(monkeypatch)
    requests_before = len(hub.requests)
    for source in ("hf://acme/vit-cached", "hf://acme/vit-cached@main", f"hf://acme/vit-cached@{commit}"):
        model = build()
        load_pretrained(model, source, cache_dir=cache)
        assert max_error(model, CONFIG["img"]) < TOLERANCE, source
    again = vit_keras.pretrained.create_model("hf://acme/vit-cached", cache_dir=cache)
    assert max_error(again, CONFIG["img"]) < TOLERANCE
    assert len(hub.requests) == requests_before
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE is set and no snapshot of acme/vit-other") as error:
        load_pretrained(build(), "hf://acme/vit-other", cache_dir=cache)
    assert_one_line_naming(error, "hf://acme/vit-other")


@pytest.mark.single_backend
def test_hub_answering_500_fails_in_one_line_unless_the_cache_has_the_snapshot(hub, tmp_path):
    """A repository the Hub does not know, and any repository while it answers 500, fail with one
    line naming the source; a snapshot already in the cache loads while the Hub fails."""
    publish_both_formats(hub, tmp_path)
    cache = tmp_path / "cache"
    load_pretrained(build(), "hf://acme/vit-cached", cache_dir=cache)

    with pytest.raises(OSError, match=r"could not download hf://acme/vit-missing: .*404") as error:
        load_pretrained(build(), "hf://acme/vit-missing", cache_dir=cache)
    assert_one_line_naming(error, "hf://acme/vit-missing")

    hub.failure = 500
    model = build()
    load_pretrained(model, "hf://acme/vit-cached", cache_dir=cache)
    assert max_error(model, CONFIG["img"]) < TOLERANCE
    with pytest.raises(OSError, match=r"could not download hf://acme/vit-new: .*500.*no snapshot of") as error:
        load_pretrained(build(), "hf://acme/vit-new", cache_dir=cache)
    assert_one_line_naming(error, "hf://acme/vit-new")


@pytest.mark.single_backend
def test_hub_that_is_down_fails_in_one_line_unless_the_cache_has_the_snapshot(hub, tmp_path):
    """Connections refused: the cached snapshot loads, an uncached one fails with one line naming the source."""
    publish_both_formats(hub, tmp_path)
    cache = tmp_path / "cache"
    load_pretrained(build(), "hf://acme/vit-cached", cache_dir=cache)

    hub.stop()  # nothing listens on its port any more: connections are refused
    model = build()
    load_pretrained(model, "hf://acme/vit-cached", cache_dir=cache)
    assert max_error(model, CONFIG["img"]) < TOLERANCE
    with pytest.raises(OSError, match="could not download hf://acme/vit-new: .*no snapshot of") as error:
        load_pretrained(build(), "hf://acme/vit-new", cache_dir=cache)
    assert_one_line_naming(error, "hf://acme/vit-new")


@pytest.mark.single_backend
@pytest.mark.parametrize("source", ["hf://../x", "hf://org/na me", "hf://org/-name", "hf://org/name./"])
def test_malformed_repository_id_fails_in_one_line_naming_the_source(source):
    """Checked before huggingface_hub is asked (its HFValidationError named only the repository id)."""
    with pytest.raises(ValueError, match=r"source must be hf://ORG/NAME or hf://ORG/NAME@REVISION") as caught:
        load_pretrained(build(), source)
    assert_one_line_naming(caught, source)
