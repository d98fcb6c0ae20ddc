# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The Ollama registry protocol (Docker registry v2 manifests and blobs) and Ollama's on-disk layout.
Standard library only (runs in the pull Job).

``GET /v2/<ns>/<model>/manifests/<tag>`` (Accept: the Docker v2 manifest type) lists a config blob and layers, each
with a ``sha256:<hex>`` digest and a size; ``GET /v2/<ns>/<model>/blobs/sha256:<hex>`` serves each, usually through a
redirect to a CDN. Ollama keeps them under its models directory as ``blobs/sha256-<hex>`` and the manifest bytes,
unchanged, as ``manifests/<registry>/<ns>/<model>/<tag>``; written that way, a volume filled before Ollama starts
serves the model without a pull.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ._download import HttpClient, Remote, RemoteError, TransientError, origin_of, with_retries
from ._sources import OLLAMA_MANIFEST_TYPE, Source

__all__ = ["Layer", "Manifest", "blob_path", "blob_remote", "fetch_manifest", "local_manifest", "manifest_path", "parse_manifest"]

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str  # sha256:<hex>
    size: int

    @property
    def sha256(self) -> str:
        return self.digest.split(":", 1)[1]

    @property
    def filename(self) -> str:
        return self.digest.replace(":", "-")  # Ollama's blob file name


@dataclass(frozen=True)
class Manifest:
    raw: bytes
    layers: Tuple[Layer, ...]  # the config blob first, then the layers

    @property
    def digest(self) -> str:
        """What Ollama reports as the model's digest: the sha256 of the manifest bytes."""
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)


def parse_manifest(raw: bytes, where: str) -> Manifest:
    try:
        doc = json.loads(raw)
        entries = [doc["config"], *doc.get("layers", [])]
        layers = tuple(Layer(str(e.get("mediaType", "")), str(e["digest"]), int(e["size"])) for e in entries)
    except (ValueError, KeyError, TypeError) as exc:
        raise RemoteError(f"{where}: the registry sent a manifest that is not a Docker v2 manifest ({exc})") from exc
    for layer in layers:
        if not _DIGEST.match(layer.digest) or layer.size < 0:
            raise RemoteError(f"{where}: the manifest names a blob {layer.digest!r} of {layer.size} bytes, which is not a sha256 digest and size")
    return Manifest(raw, layers)


def fetch_manifest(source: Source, endpoint: str = "", *, timeout: float = 30.0, retries: int = 3) -> Manifest:
    url = source.manifest_url(endpoint)
    client = HttpClient(timeout)

    def attempt() -> Manifest:
        resp, _ = client.request("GET", url, {"Accept": OLLAMA_MANIFEST_TYPE})
        raw = resp.read()
        if resp.status == 404:
            raise RemoteError(
                f"{source.uri}: the registry {source.registry_url(endpoint)} has no {source.namespace}/{source.model}:{source.tag}; "
                "check the name and tag (ollama.com/library lists them)",
                404,
            )
        if resp.status >= 500 or resp.status == 429:
            raise TransientError(f"HTTP {resp.status}")
        if resp.status != 200:
            raise RemoteError(f"{source.uri}: the registry answered HTTP {resp.status} {resp.reason}", resp.status)
        return parse_manifest(raw, source.uri)

    try:
        return with_retries(attempt, retries, f"{source.uri}: the registry at {source.registry_url(endpoint)}")
    finally:
        client.close()


def blob_remote(source: Source, layer: Layer, endpoint: str = "") -> Remote:
    url = source.blob_url(layer.digest, endpoint)
    return Remote(url=url, size=layer.size, sha256=layer.sha256, etag=layer.digest, origin=origin_of(url), revision=layer.digest)


def manifest_path(models_dir: str, source: Source) -> str:
    return os.path.join(models_dir, *source.manifest_path.split("/"))


def blob_path(models_dir: str, layer: Layer) -> str:
    return os.path.join(models_dir, "blobs", layer.filename)


def local_manifest(models_dir: str, source: Source) -> Optional[Manifest]:
    """The manifest Ollama has for the source, or None (missing or unreadable)."""
    try:
        with open(manifest_path(models_dir, source), "rb") as handle:
            return parse_manifest(handle.read(), source.uri)
    except (OSError, RemoteError):
        return None


def missing_blobs(models_dir: str, manifest: Manifest) -> List[Layer]:
    """Blobs of a manifest that are not on disk at their size. A blob at its final name was verified before it
    was renamed there (by this code or by Ollama itself), so presence and size are enough."""
    missing = []
    for layer in manifest.layers:
        try:
            if os.path.getsize(blob_path(models_dir, layer)) == layer.size:
                continue
        except OSError:
            pass
        missing.append(layer)
    return missing
