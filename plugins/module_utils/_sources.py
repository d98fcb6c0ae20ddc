# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Model source URIs of the catalog: ``hf://``, ``https://`` and ``ollama://``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

__all__ = ["HF_DEFAULT_ENDPOINT", "OLLAMA_DEFAULT_REGISTRY", "OLLAMA_MANIFEST_TYPE", "Source", "SourceError", "parse_source"]

OLLAMA_DEFAULT_REGISTRY = "registry.ollama.ai"
HF_DEFAULT_ENDPOINT = "https://huggingface.co"
OLLAMA_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
# the Hub's repo ids (huggingface_hub's validate_repo_id): letters, digits, '-', '_', '.', at most 96, no '--' or '..'
_HF_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
# a file name the pull Job, the init container and llama-server all take as it is: no spaces, quotes or shell syntax
_FILE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+=-]{0,254}$")
# a branch, tag or commit of the Hub: git's ref names less what a URL or a shell would read otherwise
_REVISION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}$")
# Ollama's names (its server's ParseName): a host[:port], namespace, model and tag
_OLLAMA_HOST = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*(?::[0-9]{1,5})?$")
_OLLAMA_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
_OLLAMA_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,79}$")


class SourceError(ValueError):
    pass


@dataclass(frozen=True)
class Source:
    uri: str
    scheme: str  # hf | https | ollama
    # hf
    repo: str = ""  # org/name
    path: str = ""  # file inside the repo
    revision: str = "main"
    # https
    url: str = ""
    # ollama
    registry: str = ""
    namespace: str = ""
    model: str = ""
    tag: str = ""

    @property
    def filename(self) -> str:
        if self.scheme == "hf":
            return self.path.rsplit("/", 1)[-1]
        if self.scheme == "https":
            return urlsplit(self.url).path.rsplit("/", 1)[-1]
        return f"{self.model}-{self.tag}"

    @property
    def ollama_name(self) -> str:
        """The name Ollama itself uses: library models drop registry and namespace."""
        if self.registry == OLLAMA_DEFAULT_REGISTRY and self.namespace == "library":
            return f"{self.model}:{self.tag}"
        if self.registry == OLLAMA_DEFAULT_REGISTRY:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.registry}/{self.namespace}/{self.model}:{self.tag}"

    # --- where the bytes are (the download code in _hf.py, _ollama_registry.py and _pull.py builds on these) ---

    def resolve_url(self, endpoint: str = HF_DEFAULT_ENDPOINT, revision: str = "") -> str:
        """The Hub's resolve URL of an hf:// file: ``{endpoint}/{repo}/resolve/{revision}/{path}``."""
        rev = quote(revision or self.revision, safe="")  # branch names may hold '/', which the Hub wants encoded
        return f"{endpoint.rstrip('/')}/{self.repo}/resolve/{rev}/{quote(self.path)}"

    def registry_url(self, endpoint: str = "") -> str:
        """Base URL of an ollama:// source's registry; ``endpoint`` overrides it (mirrors, tests)."""
        return (endpoint or f"https://{self.registry}").rstrip("/")

    def manifest_url(self, endpoint: str = "") -> str:
        return f"{self.registry_url(endpoint)}/v2/{self.namespace}/{self.model}/manifests/{self.tag}"

    def blob_url(self, digest: str, endpoint: str = "") -> str:
        return f"{self.registry_url(endpoint)}/v2/{self.namespace}/{self.model}/blobs/{digest}"

    @property
    def manifest_path(self) -> str:
        """Where Ollama keeps the manifest, relative to its models directory (``OLLAMA_MODELS``)."""
        return f"manifests/{self.registry}/{self.namespace}/{self.model}/{self.tag}"


def parse_source(uri: object) -> Source:
    if not isinstance(uri, str) or "://" not in uri:
        raise SourceError(f"{uri!r} is not a model source; use hf://org/repo/file.gguf, https://host/file or ollama://model:tag")
    scheme, rest = uri.split("://", 1)
    if scheme == "hf":
        return _parse_hf(uri, rest)
    if scheme == "https":
        return _parse_https(uri)
    if scheme == "ollama":
        return _parse_ollama(uri, rest)
    if scheme == "http":
        raise SourceError(f"{uri!r} uses plain http; use https:// (a model is code the GPU runs, fetch it over TLS)")
    raise SourceError(f"{uri!r} has an unknown scheme {scheme!r}; use hf://, https:// or ollama://")


def _parse_hf(uri: str, rest: str) -> Source:
    revision = "main"
    if "@" in rest:
        rest, revision = rest.rsplit("@", 1)
        if not revision:
            raise SourceError(f"{uri!r}: the revision after @ is empty; name a branch, tag or commit")
    parts = rest.split("/")
    if len(parts) < 3 or not all(parts):
        raise SourceError(f"{uri!r} must name org/repo/path, for example hf://Qwen/Qwen3-Embedding-0.6B-GGUF/Qwen3-Embedding-0.6B-Q8_0.gguf")
    org, name = parts[0], parts[1]
    for part in (org, name):
        if not _HF_PART.match(part) or "--" in part or ".." in part:
            raise SourceError(f"{uri!r}: {part!r} is not a valid Hugging Face org or repo name (letters, digits, '-', '_', '.', no '--' or '..')")
    for part in parts[2:]:
        if not _FILE_PART.match(part) or part in (".", ".."):
            raise SourceError(f"{uri!r}: {part!r} is not a file or folder name it can use (letters, digits, '.', '_', '+', '=', '-'; no '..')")
    if not _REVISION.match(revision) or ".." in revision or "//" in revision or revision.endswith(("/", ".lock")):
        raise SourceError(f"{uri!r}: {revision!r} is not a branch, tag or commit name (letters, digits, '.', '_', '-', '/'; no '..')")
    return Source(uri=uri, scheme="hf", repo=f"{org}/{name}", path="/".join(parts[2:]), revision=revision)


def _parse_https(uri: str) -> Source:
    split = urlsplit(uri)
    if not split.hostname or not split.path.strip("/"):
        raise SourceError(f"{uri!r} must name a host and a file path")
    if split.username or split.password or split.query:
        raise SourceError(
            f"{uri!r} carries credentials (user:password@ or a query string), which would be written into the tree in plain text;"
            " serve the file without them, or use hf:// with homelab_ai_hf_token for a gated Hub repository"
        )
    parts = split.path.strip("/").split("/")
    if split.hostname == urlsplit(HF_DEFAULT_ENDPOINT).hostname and len(parts) >= 5 and parts[2] in ("blob", "raw"):
        # the Hub's web page of a file (/blob/: HTML) or its Git view (/raw/: an LFS pointer for a model), not the file
        revision = "" if parts[3] == "main" else f"@{parts[3]}"
        form = f"hf://{parts[0]}/{parts[1]}/{'/'.join(parts[4:])}{revision}"
        page = "the Hub's web page of the file, which serves HTML" if parts[2] == "blob" else "the Hub's Git view of the file, an LFS pointer"
        raise SourceError(f"{uri!r} is {page}, not the model; use {form} (the pull resolves it and checks the Hub's sha256)")
    if not all(_FILE_PART.match(part) and part not in (".", "..") for part in parts):
        raise SourceError(f"{uri!r}: the path must be file and folder names (letters, digits, '.', '_', '+', '=', '-'; no '..')")
    return Source(uri=uri, scheme="https", url=uri)


def _parse_ollama(uri: str, rest: str) -> Source:
    if not rest:
        raise SourceError(f"{uri!r} names no model; use ollama://llama3.2:3b")
    parts = rest.split("/")
    if len(parts) > 3 or not all(parts):
        raise SourceError(f"{uri!r} must be ollama://[registry/][namespace/]model[:tag]")
    registry, namespace = OLLAMA_DEFAULT_REGISTRY, "library"
    if len(parts) == 3:
        registry, namespace, last = parts
    elif len(parts) == 2:
        # a first part with a dot or a port is a registry host (as Docker and Ollama decide it)
        if "." in parts[0] or ":" in parts[0] or parts[0] == "localhost":
            registry, last = parts
        else:
            namespace, last = parts
    else:
        last = parts[0]
    model, _, tag = last.partition(":")
    tag = tag or "latest"
    if not _OLLAMA_HOST.match(registry):
        raise SourceError(f"{uri!r}: {registry!r} is not a registry host (a host name, optionally :port)")
    if not _OLLAMA_NAME.match(namespace):
        raise SourceError(f"{uri!r}: {namespace!r} is not a valid namespace (lower case letters, digits, '.', '_', '-')")
    if not _OLLAMA_NAME.match(model):
        raise SourceError(f"{uri!r}: {model!r} is not a valid Ollama model name (lower case letters, digits, '.', '_', '-')")
    if not _OLLAMA_TAG.match(tag):
        raise SourceError(f"{uri!r}: {tag!r} is not a valid tag")
    return Source(uri=uri, scheme="ollama", registry=registry, namespace=namespace, model=model, tag=tag)
