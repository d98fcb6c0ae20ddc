# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""A Kubernetes API server on 127.0.0.1 for testing apply mode where no cluster can be had.

It speaks the parts of the real protocol that kubernetes.core's k8s and k8s_info modules use: discovery
(/api, /apis, /api/v1, /apis/<group>/<version>), GET of objects and lists, server-side apply
(PATCH application/apply-patch+yaml, with fieldManager, force and dryRun=All), merge and strategic-merge
patches, and 404/409 Status answers. Applied objects keep their uid and resourceVersion while nothing
changes, so a second apply reports no change, as on a real API server. A workload's status says it is
rolled out at once (there are no kubelets). Every request is logged, for assertions on order.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import yaml

from .servers import JsonHandler, StandIn

# (group, version, plural, kind, namespaced)
RESOURCES: List[Tuple[str, str, str, str, bool]] = [
    ("", "v1", "namespaces", "Namespace", False),
    ("", "v1", "nodes", "Node", False),
    ("", "v1", "configmaps", "ConfigMap", True),
    ("", "v1", "secrets", "Secret", True),
    ("", "v1", "services", "Service", True),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True),
    ("", "v1", "pods", "Pod", True),
    ("apps", "v1", "deployments", "Deployment", True),
    ("apps", "v1", "statefulsets", "StatefulSet", True),
    ("apps", "v1", "daemonsets", "DaemonSet", True),
    ("batch", "v1", "jobs", "Job", True),
    ("storage.k8s.io", "v1", "storageclasses", "StorageClass", False),
    ("networking.k8s.io", "v1", "ingresses", "Ingress", True),
    ("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False),
    ("elasti.truefoundry.com", "v1alpha1", "elastiservices", "ElastiService", True),
    ("nfd.k8s-sigs.io", "v1alpha1", "nodefeaturerules", "NodeFeatureRule", False),
    ("monitoring.coreos.com", "v1", "podmonitors", "PodMonitor", True),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True),
]
_SINGULAR = {"Ingress": "ingress", "StorageClass": "storageclass", "RuntimeClass": "runtimeclass"}


@dataclass
class Request:
    method: str
    path: str
    kind: Optional[str]
    name: Optional[str]
    namespace: Optional[str]
    dry_run: bool
    content_type: str = ""


@dataclass
class FakeKube(StandIn):
    store: Dict[Tuple[str, str, Optional[str], str], Dict[str, Any]] = field(default_factory=dict)
    log: List[Request] = field(default_factory=list)
    nodes: List[str] = field(default_factory=list)
    failing_jobs: List[str] = field(default_factory=list)  # Jobs whose name starts so end Failed, the others Complete

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 1
        for node in self.nodes:  # nodes exist before anything is applied, as kubelets register them
            self._put(("", "Node", None, node), {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": {}}})
        fake = self

        class Handler(JsonHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, status: int, body: Any) -> None:
                self.send_json(status, body)

            def do_GET(self) -> None:
                self._send(*fake.handle("GET", self.path, None, ""))

            def _with_body(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._send(*fake.handle(self.command, self.path, body, self.headers.get("Content-Type", "")))

            do_PATCH = do_POST = do_DELETE = do_PUT = _with_body

        super().__init__(Handler)

    def kubeconfig(self) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )

    def objects(self, kind: Optional[str] = None) -> List[Dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(obj) for (_, k, _, _), obj in sorted(self.store.items(), key=lambda item: str(item[0])) if kind in (None, k)]

    # --- the protocol ---------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, body: Optional[bytes], content_type: str) -> Tuple[int, Any]:
        split = urlsplit(raw_path)
        query = parse_qs(split.query)
        parts = [p for p in split.path.split("/") if p]
        dry_run = query.get("dryRun") == ["All"]
        if method == "GET" and parts == ["version"]:
            return 200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}
        if method == "GET" and parts == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        if method == "GET" and parts == ["apis"]:
            return 200, self._groups()
        route = self._route(parts)
        if route is None:
            return 404, _status(404, "NotFound", f"the server could not find the requested resource ({split.path})")
        resource, namespace, name = route
        if resource is None:  # /api/v1 or /apis/<group>/<version>
            return (200, self._resource_list(parts)) if method == "GET" else (405, _status(405, "MethodNotAllowed", "method not allowed"))
        group, version, _plural, kind, _namespaced = resource
        with self._lock:
            self.log.append(Request(method, split.path, kind, name, namespace, dry_run, content_type))
            key = (group, kind, namespace, name or "")
            if method == "GET" and name:
                obj = self.store.get(key)
                return (200, copy.deepcopy(obj)) if obj else (404, _status(404, "NotFound", f'{_plural} "{name}" not found', kind, name))
            if method == "GET":
                selector = dict(term.split("=", 1) for term in (query.get("labelSelector") or [""])[0].split(",") if "=" in term)
                items = [
                    copy.deepcopy(o)
                    for (g, k, ns, _), o in sorted(self.store.items(), key=lambda i: str(i[0]))
                    if (g, k) == (group, kind)
                    and namespace in (None, ns)
                    and all((o["metadata"].get("labels") or {}).get(key) == value for key, value in selector.items())
                ]
                return 200, {
                    "apiVersion": f"{group}/{version}".lstrip("/"),
                    "kind": f"{kind}List",
                    "metadata": {"resourceVersion": str(self._version)},
                    "items": items,
                }
            if method == "PATCH" and name:
                patch = yaml.safe_load(body or b"{}")
                if "apply-patch" in content_type:
                    return self._apply(key, group, version, kind, namespace, name, patch, dry_run)
                existing = self.store.get(key)
                if existing is None:
                    return 404, _status(404, "NotFound", f'{_plural} "{name}" not found', kind, name)
                merged = _merge(copy.deepcopy(existing), patch)
                return 200, self._commit(key, existing, merged, dry_run)
            if method == "DELETE" and name:
                existing = self.store.get(key)
                if existing is None:
                    return 404, _status(404, "NotFound", f'{_plural} "{name}" not found', kind, name)
                if not dry_run:
                    del self.store[key]
                return 200, copy.deepcopy(existing)
            if method == "POST" and not name:
                obj = json.loads(body or b"{}")
                key = (group, kind, namespace, obj["metadata"]["name"])
                if key in self.store:
                    return 409, _status(409, "AlreadyExists", f'{_plural} "{obj["metadata"]["name"]}" already exists', kind, obj["metadata"]["name"])
                return 201, self._commit(key, None, obj, dry_run)
        return 405, _status(405, "MethodNotAllowed", f"{method} {split.path} is not supported by this stand-in")

    def _apply(self, key, group, version, kind, namespace, name, patch, dry_run) -> Tuple[int, Any]:
        expected = f"{group}/{version}" if group else version
        if patch.get("kind") != kind or patch.get("apiVersion") != expected:
            return 400, _status(400, "BadRequest", f"apply of {patch.get('apiVersion')} {patch.get('kind')} to the {kind} endpoint")
        existing = self.store.get(key)
        applied = copy.deepcopy(patch)
        applied.setdefault("metadata", {})["name"] = name
        if namespace:
            applied["metadata"]["namespace"] = namespace
        if existing is not None and kind == "Node":
            # a Node is the kubelet's: an apply only adds the labels it names
            applied = _merge(copy.deepcopy(existing), applied)
        return (200 if existing else 201), self._commit(key, existing, applied, dry_run)

    def _commit(self, key, existing: Optional[Dict[str, Any]], obj: Dict[str, Any], dry_run: bool) -> Dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        for field_name in ("uid", "creationTimestamp", "resourceVersion", "generation"):
            meta.pop(field_name, None)
        _defaults(obj)
        old_meta = (existing or {}).get("metadata", {})
        same = existing is not None and _content(existing) == _content(obj)
        meta["uid"] = old_meta.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = old_meta.get("creationTimestamp") or "2026-01-01T00:00:00Z"
        spec_changed = existing is None or existing.get("spec") != obj.get("spec")
        meta["generation"] = int(old_meta.get("generation", 0)) + (1 if spec_changed else 0)
        if same:
            meta["resourceVersion"] = old_meta["resourceVersion"]
        else:
            self._version += 1
            meta["resourceVersion"] = str(self._version)
        _rolled_out(obj)
        if obj.get("kind") == "Job":  # no pods here: a Job finishes as soon as it is stored
            failed = any(meta.get("name", "").startswith(prefix) for prefix in self.failing_jobs)
            condition = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}
            obj["status"] = {"conditions": [condition if failed else {"type": "Complete", "status": "True"}], "succeeded" if not failed else "failed": 1}
        if not dry_run:
            self.store[key] = obj
        return copy.deepcopy(obj)

    def _put(self, key, obj) -> None:
        self._commit(key, None, obj, False)

    # --- discovery --------------------------------------------------------------------------------

    def _groups(self) -> Dict[str, Any]:
        groups: Dict[str, List[str]] = {}
        for group, version, *_ in RESOURCES:
            if group and version not in groups.setdefault(group, []):
                groups[group].append(version)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                    "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
                }
                for group, versions in groups.items()
            ],
        }

    def _resource_list(self, parts: List[str]) -> Dict[str, Any]:
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [
                {"name": plural, "singularName": _SINGULAR.get(kind, kind.lower()), "namespaced": namespaced, "kind": kind, "verbs": verbs}
                for g, v, plural, kind, namespaced in RESOURCES
                if (g, v) == (group, version)
            ]
            + [
                {"name": f"{plural}/status", "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["get", "patch", "update"]}
                for g, v, plural, kind, namespaced in RESOURCES
                if (g, v) == (group, version) and kind in ("Deployment", "StatefulSet", "DaemonSet", "Job")
            ],
        }

    def _route(self, parts: List[str]):
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        known = [r for r in RESOURCES if (r[0], r[1]) == (group, version)]
        if not known:
            return None
        if not rest:
            return None, None, None
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        plural, name = rest[0], (rest[1] if len(rest) > 1 else None)
        for resource in known:
            if resource[2] == plural:
                return resource, namespace, name
        return None


def _content(obj: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(obj)
    for field_name in ("uid", "creationTimestamp", "resourceVersion", "generation"):
        out.get("metadata", {}).pop(field_name, None)
    out.pop("status", None)
    return out


def _defaults(obj: Dict[str, Any]) -> None:
    """The defaults the API server fills in that the modules' readiness checks read."""
    spec = obj.get("spec")
    if obj["kind"] in ("Deployment", "StatefulSet") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
    if obj["kind"] == "StatefulSet" and isinstance(spec, dict):
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        spec.setdefault("podManagementPolicy", "OrderedReady")
    if obj["kind"] == "Deployment" and isinstance(spec, dict):
        spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})


def _rolled_out(obj: Dict[str, Any]) -> None:
    """No kubelets here: a workload is rolled out as soon as it is stored."""
    generation = obj["metadata"]["generation"]
    replicas = (obj.get("spec") or {}).get("replicas", 1)
    if obj["kind"] in ("Deployment", "StatefulSet"):
        obj["status"] = {
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
            "currentReplicas": replicas,
            "conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}],
        }
        if obj["kind"] == "StatefulSet":
            obj["status"]["currentRevision"] = obj["status"]["updateRevision"] = f"{obj['metadata']['name']}-{generation}"
    elif obj["kind"] == "DaemonSet":
        obj["status"] = {
            "observedGeneration": generation,
            "desiredNumberScheduled": 1,
            "currentNumberScheduled": 1,
            "numberReady": 1,
            "updatedNumberScheduled": 1,
            "numberAvailable": 1,
        }
    elif obj["kind"] == "Namespace":
        obj["status"] = {"phase": "Active"}


def _merge(base: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386): what a merge or strategic-merge patch of plain fields does."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(base, dict):
        base = {}
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = _merge(base.get(key), value)
    return base


def _status(code: int, reason: str, message: str, kind: Optional[str] = None, name: Optional[str] = None) -> Dict[str, Any]:
    details = {"name": name, "kind": kind} if kind else {}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "details": details, "code": code}
