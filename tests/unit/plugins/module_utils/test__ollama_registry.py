"""ollama:// pulls into Ollama's own layout, against a local registry (with a CDN for the blobs)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._download import DownloadError, RemoteError
from ansible_collections.homelab.ai.plugins.module_utils._ollama_registry import parse_manifest
from ansible_collections.homelab.ai.plugins.module_utils._pull import PullRequest, pull
from tests.support.model_server import ModelServer

WEIGHTS = os.urandom(2 * 1024 * 1024 + 7)
LAYERS = [
    ("application/vnd.ollama.image.model", WEIGHTS),
    ("application/vnd.ollama.image.template", b"{{ .Prompt }}"),
    ("application/vnd.ollama.image.license", b"LICENSE"),
]


@pytest.fixture
def registry():
    with ModelServer() as srv:
        srv.add_ollama("llama3.2", "3b", LAYERS)
        yield srv


def req(registry, dest, source="ollama://llama3.2:3b", **kw):
    return PullRequest(source=source, dest=str(dest), endpoint=registry.url, part_size=256 * 1024, connections=4, backoff=0.01, checkpoint=0.05, **kw)


def blobs(dest):
    return sorted(p.name for p in (dest / "blobs").iterdir())


def test_the_model_lands_in_ollamas_layout_with_the_manifest_last(registry, tmp_path):
    result = pull(req(registry, tmp_path))
    manifest_file = tmp_path / "manifests" / "registry.ollama.ai" / "library" / "llama3.2" / "3b"
    raw = manifest_file.read_bytes()
    assert raw == registry.manifests[("library", "llama3.2", "3b")]  # byte for byte: Ollama's digest is its sha256
    manifest = parse_manifest(raw, "test")
    for layer in manifest.layers:
        path = tmp_path / "blobs" / layer.digest.replace(":", "-")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == layer.sha256
    assert (result.changed, result.action, result.path) == (True, "downloaded", str(manifest_file))
    assert result.sha256 == hashlib.sha256(raw).hexdigest() and result.size == manifest.size
    assert result.bytes_transferred == manifest.size
    assert all(r["authorization"] is None for r in registry.log)
    assert registry.requests("cdn")  # blobs came through the redirect


def test_a_complete_model_is_unchanged_without_network(registry, tmp_path):
    pull(req(registry, tmp_path))
    before = len(registry.log)
    result = pull(req(registry, tmp_path))
    assert (result.changed, result.action) == (False, "unchanged") and len(registry.log) == before
    result = pull(req(registry, tmp_path, state="latest"))
    assert (result.changed, result.action) == (False, "unchanged")
    assert [r["path"].split("/")[-2] for r in registry.log[before:]] == ["manifests"]


def test_latest_fetches_only_the_new_blobs(registry, tmp_path):
    pull(req(registry, tmp_path))
    registry.add_ollama("llama3.2", "3b", [LAYERS[0], ("application/vnd.ollama.image.template", b"{{ .System }} {{ .Prompt }}")])
    assert pull(req(registry, tmp_path)).action == "unchanged"
    result = pull(req(registry, tmp_path, state="latest"))
    assert result.changed and result.bytes_transferred < 1000  # the weights were there already


def test_check_mode_reports_the_size_and_writes_nothing(registry, tmp_path):
    result = pull(req(registry, tmp_path), check_mode=True)
    assert (result.changed, result.action) == (True, "would download")
    assert result.bytes_to_transfer == sum(f["size"] for f in result.files) > len(WEIGHTS)
    assert list(tmp_path.iterdir()) == []


def test_a_corrupted_blob_leaves_no_manifest_and_the_next_run_completes(registry, tmp_path):
    registry.fault("corrupt", offset=1_000_000)
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        pull(req(registry, tmp_path))
    assert not (tmp_path / "manifests").exists()
    assert all(len(name) == len("sha256-") + 64 for name in blobs(tmp_path))  # only verified blobs at their names
    assert pull(req(registry, tmp_path)).changed
    assert hashlib.sha256((tmp_path / "blobs" / ("sha256-" + hashlib.sha256(WEIGHTS).hexdigest())).read_bytes()).hexdigest()


def test_absent_removes_the_manifest_and_the_blobs_no_other_model_uses(registry, tmp_path):
    registry.add_ollama("llama3.2", "other", [LAYERS[0], ("application/vnd.ollama.image.params", b'{"stop": []}')])
    pull(req(registry, tmp_path))
    pull(req(registry, tmp_path, source="ollama://llama3.2:other"))
    assert pull(req(registry, tmp_path, state="absent"), check_mode=True).action == "would remove"
    result = pull(req(registry, tmp_path, state="absent"))
    assert (result.changed, result.action) == (True, "removed")
    weights = "sha256-" + hashlib.sha256(WEIGHTS).hexdigest()
    assert weights in blobs(tmp_path)  # shared with llama3.2:other
    assert "sha256-" + hashlib.sha256(b"LICENSE").hexdigest() not in blobs(tmp_path)
    assert pull(req(registry, tmp_path, state="absent")).action == "absent"


def test_an_unknown_model_is_named(registry, tmp_path):
    with pytest.raises(RemoteError, match="has no library/nope:1"):
        pull(req(registry, tmp_path, source="ollama://nope:1"))


def test_a_broken_manifest_is_refused(registry, tmp_path):
    registry.manifests[("library", "bad", "1")] = json.dumps({"config": {"digest": "md5:x", "size": 1}, "layers": []}).encode()
    with pytest.raises(RemoteError, match="not a sha256 digest"):
        pull(req(registry, tmp_path, source="ollama://bad:1"))
