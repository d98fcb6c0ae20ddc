# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The Kubernetes objects that pull one model into a PVC: a ConfigMap carrying the download code and a Job that
runs it in a stock Python image. Pure: the same inputs give the same objects (the filter ``homelab.ai.pull_job``).

The code is this collection's own stdlib-only module_utils (``_pull.py`` and what it imports), mounted as the
package ``homelab_ai_pull``; the Job runs ``python -m homelab_ai_pull._pull --spec JSON``, so the cluster runs the
very code the unit tests run. The Job's name carries a digest of its spec and of the code: a Job's pod template
cannot change, so a new source, setting or code version is a new Job (the old one goes with its TTL, or Flux
prunes it), while an unchanged one is left alone. Re-running a finished pull is cheap: a verified file is kept
without network transfer or hashing.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, List, Mapping, Optional

from ._names import is_dns_subdomain, slug
from ._placement import RUN_AS
from ._problems import InputError, Problem
from ._quantity import to_bytes, to_quantity

__all__ = ["CODE_MODULES", "DEFAULT_IMAGE", "PACKAGE", "cache_size", "code_configmap", "code_digest", "code_files", "pull_job", "pull_wait_container"]

# the stdlib-only modules the Job needs, in import order
CODE_MODULES = ("_problems.py", "_sources.py", "_download.py", "_hf.py", "_ollama_registry.py", "_pull.py")
PACKAGE = "homelab_ai_pull"
CODE_DIR = "/opt/homelab-ai"
# a pinned stock image: Python 3.12 has everything the code needs and nothing else. The official image rebuilds the
# tag of the newest 3.12 release for Debian's security updates; a digest would freeze them out (docs/images.md).
DEFAULT_IMAGE = "docker.io/library/python:3.12.15-slim-bookworm"
DEFAULT_RESOURCES = {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
_LABELS = {"app.kubernetes.io/name": "model-pull", "app.kubernetes.io/component": "model-pull"}


def code_files() -> Dict[str, str]:
    """ConfigMap data: the package's files by name."""
    here = os.path.dirname(os.path.abspath(__file__))
    files = {"__init__.py": f'"""homelab.ai model pull code, from the collection\'s module_utils ({", ".join(CODE_MODULES)})."""\n'}
    for name in CODE_MODULES:
        with open(os.path.join(here, name), encoding="utf-8") as handle:
            files[name] = handle.read()
    return files


def code_digest() -> str:
    digest = hashlib.sha256()
    for name, text in sorted(code_files().items()):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:10]


def code_configmap(name: str = "", namespace: Optional[str] = None, labels: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """The ConfigMap with the code; named after its digest unless a name is given (one per component is enough)."""
    metadata: Dict[str, Any] = {"name": name or f"model-pull-code-{code_digest()}", "labels": {**_LABELS, **(labels or {})}}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": code_files()}


def pull_job(
    model: Mapping[str, Any],
    pvc: str,
    *,
    mount_path: str = "/models",
    subdir: str = "",
    name: str = "",
    namespace: Optional[str] = None,
    image: str = DEFAULT_IMAGE,
    node: Optional[str] = None,
    code: str = "",
    connections: int = 8,
    part_size: int = 16 << 20,
    resources: Optional[Mapping[str, Any]] = None,
    token_secret: Optional[Mapping[str, str]] = None,
    endpoint: str = "",
    backoff_limit: int = 4,
    ttl_seconds: Optional[int] = 86400,
    active_deadline_seconds: Optional[int] = None,
    progress_interval: int = 30,
    run_as_user: int = RUN_AS,
    fs_group: int = RUN_AS,
    labels: Optional[Mapping[str, str]] = None,
    where: str = "",
) -> List[Dict[str, Any]]:
    """A Job that pulls ``model`` (a catalog entry: ``name``, ``source``, optional ``sha256``, ``filename``) into
    ``<mount_path>/<subdir>`` of the PVC ``pvc``; for ollama:// sources that directory is Ollama's models directory.

    Returns ``[ConfigMap, Job]``, or ``[Job]`` when ``code`` names a ConfigMap from ``code_configmap()`` that the
    caller renders once for several Jobs.
    """
    where = where or f"model {model.get('name') or model.get('source')}"
    problems: List[Problem] = []
    if not is_dns_subdomain(pvc):
        problems.append(Problem(f"{where}: pvc", f"{pvc!r} is not a PVC name", "give the claim the model goes into"))
    if not mount_path.startswith("/") or ".." in mount_path.split("/") or ".." in subdir.split("/") or subdir.startswith("/"):
        problems.append(
            Problem(f"{where}: mount_path/subdir", f"{mount_path!r} / {subdir!r} is not an absolute path and a relative one", "e.g. /models and models")
        )
    if image.rsplit("/", 1)[-1].find(":") < 0 and "@sha256:" not in image:
        problems.append(Problem(f"{where}: image", f"{image!r} is not pinned to a version", "give a tag or digest, e.g. " + DEFAULT_IMAGE))
    if problems:
        raise InputError(problems)
    dest = mount_path.rstrip("/") + (f"/{subdir.strip('/')}" if subdir.strip("/") else "")
    spec: Dict[str, Any] = {
        "source": str(model.get("source") or ""),
        "dest": dest,
        "connections": connections,
        "part_size": part_size,
        **({"sha256": str(model["sha256"]).lower()} if model.get("sha256") else {}),
        **({"filename": str(model["filename"])} if model.get("filename") else {}),
        **({"endpoint": endpoint} if endpoint else {}),
        "name": str(model.get("name") or ""),
        # llama-server reads GGUF only: a web page or another file is refused by the pull, not by the server later
        **({"magic": "GGUF"} if model.get("backend") == "llamacpp" else {}),
    }
    # Imported here: the pull code is the largest module_utils, and Ansible compiles collection code from source in each
    # task's worker, so the roles that pull nothing should not pay for it.
    from ._pull import PullRequest, check_request  # pylint: disable=import-outside-toplevel

    source = check_request(PullRequest(**spec), where)  # every bad input fails here, at render time, not in the cluster
    # a file without a catalog name (a Stable Diffusion checkpoint) is named by its file, less the suffix
    label = str(model.get("name") or os.path.splitext(spec.get("filename") or source.filename)[0])

    identity = json.dumps({"spec": spec, "pvc": pvc, "image": image, "code": code_digest(), "node": node}, sort_keys=True)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    job_name = name or f"pull-{slug(str(model.get('slug') or label), 44)}-{digest}"
    configmap = code or f"{job_name}-code"
    job_labels = {**_LABELS, "app.kubernetes.io/instance": job_name, **(labels or {})}
    metadata: Dict[str, Any] = {
        "name": job_name,
        "labels": job_labels,
        "annotations": {"homelab.ai/model": label, "homelab.ai/source": spec["source"]},
    }
    if namespace:
        metadata["namespace"] = namespace
    env: List[Dict[str, Any]] = [
        {"name": "PYTHONPATH", "value": CODE_DIR},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if token_secret:
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": token_secret["name"], "key": token_secret.get("key", "HF_TOKEN"), "optional": True}},
            }
        )
    pod: Dict[str, Any] = {
        "restartPolicy": "Never",  # each retry a new pod: the logs of a failed one stay for `kubectl logs`
        "automountServiceAccountToken": False,  # it never talks to the Kubernetes API
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": run_as_user,
            "runAsGroup": fs_group,
            "fsGroup": fs_group,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "pull",
                "image": image,
                "command": ["python", "-m", f"{PACKAGE}._pull"],
                "args": ["--spec", json.dumps(spec, sort_keys=True), "--progress-interval", str(progress_interval)],
                "env": env,
                "resources": json.loads(json.dumps(resources or DEFAULT_RESOURCES)),
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [
                    {"name": "models", "mountPath": mount_path},
                    {"name": "code", "mountPath": f"{CODE_DIR}/{PACKAGE}", "readOnly": True},
                ],
            }
        ],
        "volumes": [
            {"name": "models", "persistentVolumeClaim": {"claimName": pvc}},
            {"name": "code", "configMap": {"name": configmap}},
        ],
    }
    if node:
        # a ReadWriteOnce volume attaches to one node: the pull runs where the server that uses it runs
        pod["nodeSelector"] = {"kubernetes.io/hostname": node}
    job_spec: Dict[str, Any] = {"backoffLimit": backoff_limit, "template": {"metadata": {"labels": job_labels}, "spec": pod}}
    if ttl_seconds is not None:
        job_spec["ttlSecondsAfterFinished"] = ttl_seconds
    if active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = active_deadline_seconds
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}
    if code:
        return [job]
    return [code_configmap(configmap, namespace, labels), job]


_WAIT = (
    "import os, sys, time\n"
    "path, started = sys.argv[1], time.monotonic()\n"
    "while not os.path.exists(path):\n"
    "    print(f'waiting for the model pull Job to place {path} ({time.monotonic() - started:.0f} s)', flush=True)\n"
    "    time.sleep(10)\n"
)


def pull_wait_container(path: str, volume: str, mount_path: str = "/models", image: str = DEFAULT_IMAGE, run_as_user: int = RUN_AS) -> Dict[str, Any]:
    """An init container that holds a server back until its pull Job has renamed the verified file into place
    (it only ever appears whole). Needed where the Job and the server start together (GitOps applies both)."""
    return {
        "name": "wait-for-model",
        "image": image,
        "command": ["python", "-c", _WAIT, path],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": run_as_user,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": volume, "mountPath": mount_path, "readOnly": True}],
    }


_GI = 2**30


def cache_size(model: Mapping[str, Any], default: str) -> str:
    """Size of a model's cache volume: as set, else the file size plus 10 % and 1 GiB (partial downloads,
    metadata), rounded up to whole GiB, else ``default``."""
    if model.get("cache_size"):
        return to_quantity(int(model["cache_size"]))
    if model.get("size"):
        wanted = int(model["size"]) * 11 // 10 + _GI
        return to_quantity(-(-wanted // _GI) * _GI)
    return to_quantity(to_bytes(default))
