# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""What a role hands to the delivery: a component, its objects, Helm charts and secret specs.

A role never talks to the cluster; it describes a component and keeps it in a variable of its own
(``set_fact: _<role>_component: "{{ {...} | homelab.ai.component(inventory, role) }}"``; its name, layer and needs come
from its ``meta/component.yml``). The delivery collects
every such variable (``collect_components``) and turns them into a GitOps tree (render) or server-side
applies them (apply), in dependency order, so both modes deliver the same objects.

``gpu_workloads`` are what the component places on GPUs, for the VRAM plan: their shape is ``_workloads.GpuWorkload``,
checked here when the component is registered.

Variables, not facts: Ansible copies every fact into each task's variables, which for a catalog of
100 models costs seconds per task; a variable set by set_fact costs nothing until it is used.
"""

from __future__ import annotations

import copy
import hashlib
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ._flux import LAYERS, PRUNE_DISABLED, chart_objects, keeps_data
from ._names import is_dns_label
from ._network import network_policies
from ._pod_security import namespace_level
from ._problems import InputError, Problem
from ._tree import secret_path
from ._workloads import normalize_workloads
from ._yaml import dump, plain

__all__ = [
    "CLUSTER_SCOPED_KINDS",
    "COMMON_LABELS",
    "MARKER",
    "SYSTEM_NAMESPACES",
    "apply_batches",
    "collect_components",
    "delivery_plan",
    "delivery_secrets",
    "describe_component",
    "endpoints",
    "gpu_workloads_of",
    "namespace_objects",
    "namespaces_of",
    "normalize_component",
    "order_components",
    "prepare",
    "secret_checksums",
    "with_checksums",
]

# Kinds the collection renders that have no namespace.
CLUSTER_SCOPED_KINDS = frozenset(
    {"Namespace", "RuntimeClass", "StorageClass", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "NodeFeatureRule"}
)
# Namespaces that exist on every cluster (or belong to Flux), which the collection never creates.
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease", "flux-system"})
COMMON_LABELS = {"app.kubernetes.io/managed-by": "homelab.ai", "app.kubernetes.io/part-of": "homelab-ai"}
# the workloads whose pods can roll (not Jobs: a Job's pod template cannot change)
_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
# the key that marks a variable's value as a registered component
MARKER = "homelab_ai_component"
_COMPONENT_KEYS = ("name", "layer", "needs", "objects", "secrets", "helm", "gpu_workloads", "summary")
# provides: the API groups whose CRDs the chart installs; keeps_data: uninstalling it would lose volumes
_HELM_KEYS = ("name", "namespace", "repo_name", "repo_url", "chart", "version", "values", "needs", "provides", "keeps_data")


def collect_components(variables: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    """The components registered in ``variables`` (a role's ``<role>_component``), sorted by name.

    The delivery orders them by their needs; sorting by name first makes that order independent of how
    the variables happen to be listed.
    """
    found = [value for name, value in variables.items() if name.endswith("_component") and isinstance(value, Mapping) and value.get(MARKER)]
    return sorted(found, key=lambda component: str(component["name"]))


def describe_component(raw: Mapping[str, Any], inventory: Mapping[str, Any], role: str) -> Dict[str, Any]:
    """A role's component: what its templates made (``raw``) and what its ``meta/component.yml`` declares (name, layer,
    needs: from ``homelab_ai_inventory.wiring``), checked and filled in (``normalize_component``)."""
    declared = [(name, entry) for name, entry in (inventory.get("wiring") or {}).items() if entry["role"] == role]
    if len(declared) != 1:
        raise InputError([Problem(f"role {role}", "declares no component (meta/component.yml)", "add roles/<role>/meta/component.yml")])
    name, entry = declared[0]
    clashing = sorted(key for key in ("name", "layer", "needs") if key in raw)
    if clashing:
        raise InputError([Problem(f"component {name}", f"sets {', '.join(clashing)}, which meta/component.yml declares", "declare them there only")])
    summary = dict(raw.get("summary") or {})
    exposure = entry.get("exposure")
    if exposure:  # what a person on the LAN opens, first: the address the exposure gives, else how to find it
        summary["endpoints"] = [{"name": exposure["title"], "url": exposure["url"], "note": exposure["how"]}, *(summary.get("endpoints") or [])]
    return normalize_component({**raw, "summary": summary, "name": name, "layer": entry["layer"], "needs": entry["needs"]}, inventory["namespace"])


def normalize_component(raw: Mapping[str, Any], default_namespace: str) -> Dict[str, Any]:
    """Check a component as a role registered it and fill in what it may leave out."""
    problems: List[Problem] = []
    name = raw.get("name")
    where = f"component {name}"
    if not is_dns_label(name):
        raise InputError([Problem("component", f"{name!r} is not a component name", "use a DNS label")])
    for key in raw:
        if key not in _COMPONENT_KEYS and key != MARKER:
            problems.append(Problem(f"{where}.{key}", "is not a component key", f"use {', '.join(_COMPONENT_KEYS)}"))
    layer = raw.get("layer") or LAYERS[-1]
    if layer not in LAYERS:
        problems.append(Problem(f"{where}.layer", f"{layer!r} is not a layer of the tree", f"use one of {', '.join(LAYERS)}"))
    objects = []
    for index, obj in enumerate(raw.get("objects") or []):
        if not isinstance(obj, Mapping) or not obj.get("apiVersion") or not obj.get("kind") or not (obj.get("metadata") or {}).get("name"):
            problems.append(Problem(f"{where}.objects[{index}]", "has no apiVersion, kind or metadata.name", "fix the role's template"))
            continue
        obj = dict(obj)
        metadata = dict(obj["metadata"])
        if obj["kind"] not in CLUSTER_SCOPED_KINDS and not metadata.get("namespace"):
            metadata = {"name": metadata["name"], "namespace": default_namespace, **{k: v for k, v in metadata.items() if k != "name"}}
        metadata["labels"] = {**COMMON_LABELS, **dict(metadata.get("labels") or {})}
        if keeps_data(obj):
            metadata["annotations"] = {**dict(metadata.get("annotations") or {}), **PRUNE_DISABLED}
        obj["metadata"] = metadata
        objects.append(obj)
    seen: Dict[tuple, int] = {}
    for obj in objects:
        identity = (obj["apiVersion"].split("/")[0], obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        seen[identity] = seen.get(identity, 0) + 1
    for identity, count in seen.items():
        if count > 1:
            problems.append(Problem(where, f"renders {identity[1]} {identity[3]} {count} times", "give each object its own name"))
    helm = []
    for index, chart in enumerate(raw.get("helm") or []):
        missing = [key for key in ("name", "namespace", "repo_name", "repo_url", "chart", "version") if not chart.get(key)]
        unknown = [key for key in chart if key not in _HELM_KEYS]
        if missing or unknown:
            problems.append(Problem(f"{where}.helm[{index}]", f"missing {missing} / unknown {unknown}", "fix the role"))
            continue
        helm.append({"values": {}, "needs": [], "provides": [], "keeps_data": False, **chart})
    secrets = []
    for index, secret in enumerate(raw.get("secrets") or []):
        if not secret.get("name") or not isinstance(secret.get("keys"), Mapping) or not secret["keys"]:
            problems.append(Problem(f"{where}.secrets[{index}]", "needs a name and at least one key", "fix the role"))
            continue
        secrets.append({"namespace": default_namespace, "type": "Opaque", "labels": {}, **secret})
    problems.extend(normalize_workloads([{"name": name, "gpu_workloads": raw.get("gpu_workloads") or []}])[1])
    if problems:
        raise InputError(problems)
    # plain builtins: Ansible's tagged strings and containers cost a copy in every later task
    return plain(
        {
            MARKER: True,
            "name": name,
            "layer": layer,
            "needs": list(raw.get("needs") or []),
            "objects": objects,
            "helm": helm,
            "secrets": secrets,
            "gpu_workloads": list(raw.get("gpu_workloads") or []),
            "summary": dict(raw.get("summary") or {}),
        }
    )


def order_components(components: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """Dependency order (``needs``), otherwise the order the roles ran in."""
    by_name = {c["name"]: c for c in components}
    ordered: List[Mapping[str, Any]] = []
    state: Dict[str, str] = {}

    def visit(name: str, chain: List[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise InputError([Problem("components", f"depend on each other in a cycle: {' -> '.join([*chain, name])}", "remove one of the needs")])
        state[name] = "visiting"
        for need in by_name[name]["needs"]:
            if need in by_name:  # a need on a disabled component is no need
                visit(need, [*chain, name])
        state[name] = "done"
        ordered.append(by_name[name])

    for component in components:
        visit(component["name"], [])
    return ordered


def namespaces_of(components: Sequence[Mapping[str, Any]]) -> List[str]:
    """Namespaces the objects, charts and secrets live in, which no component creates itself."""
    used: set = set()
    created: set = set()
    for component in components:
        for obj in component["objects"]:
            if obj["kind"] == "Namespace":
                created.add(obj["metadata"]["name"])
            elif obj["metadata"].get("namespace"):
                used.add(obj["metadata"]["namespace"])
        used.update(chart["namespace"] for chart in component["helm"])
        used.update(secret["namespace"] for secret in component["secrets"])
    return sorted(used - created - SYSTEM_NAMESPACES)


def apply_batches(components: Sequence[Mapping[str, Any]], namespace_objects: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Server-side apply order: namespaces and CRDs first, then each component's charts and objects.

    Every batch is ``{name, objects, helm, wait, jobs}``; ``wait`` lists the workloads whose rollout the
    delivery waits for, ``jobs`` the Jobs (model pulls) it waits to complete and whose failure it reports.
    """
    first = list(namespace_objects)
    for component in components:
        first.extend(obj for obj in component["objects"] if obj["kind"] in ("Namespace", "CustomResourceDefinition"))
    batches: List[Dict[str, Any]] = [{"name": "namespaces", "objects": first, "helm": [], "wait": [], "jobs": []}]
    for component in components:
        objects = [obj for obj in component["objects"] if obj["kind"] not in ("Namespace", "CustomResourceDefinition")]
        wait = [
            {"kind": obj["kind"], "name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"]}
            for obj in objects
            if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet") and _replicas(obj) != 0
        ]
        jobs = [{"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"]} for obj in objects if obj["kind"] == "Job"]
        batches.append({"name": component["name"], "objects": objects, "helm": component["helm"], "wait": wait, "jobs": jobs})
    return batches


def _replicas(obj: Mapping[str, Any]) -> Optional[int]:
    return (obj.get("spec") or {}).get("replicas")


def namespace_objects(components: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Namespace objects for the namespaces that no component creates itself, enforcing the strictest Pod Security
    Standard all of the collection's pods there meet (so that a pod that loses a setting is refused), and auditing and
    warning at restricted (so that what keeps a pod from it shows)."""
    pods: Dict[str, List[Mapping[str, Any]]] = {}
    for component in components:
        for obj in component["objects"]:
            template = (obj.get("spec") or {}).get("template") if obj["kind"] in (*_WORKLOADS, "Job") else None
            if template and obj["metadata"].get("namespace"):
                pods.setdefault(obj["metadata"]["namespace"], []).append(template.get("spec") or {})
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {
                    **COMMON_LABELS,
                    "pod-security.kubernetes.io/enforce": namespace_level(pods.get(name) or []),
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
                "annotations": dict(PRUNE_DISABLED),
            },
        }
        for name in namespaces_of(components)
    ]


def delivery_secrets(components: Sequence[Mapping[str, Any]], tree_dir: str) -> List[Dict[str, Any]]:
    """One entry per Secret for the sops_secret task: where its file lives, how to generate each key, and
    which variable may give a value. The values themselves never pass through here."""
    secrets = []
    for component in order_components(components):
        for secret in component["secrets"]:
            keys = {key: dict(spec or {}) for key, spec in secret["keys"].items()}
            secrets.append(
                {
                    "component": component["name"],
                    "name": secret["name"],
                    "namespace": secret["namespace"],
                    "type": secret["type"],
                    "labels": {**COMMON_LABELS, **secret["labels"]},
                    "path": os.path.join(tree_dir, secret_path(component, secret["name"])),
                    # before the tree had layers, secrets lived in <tree>/<component>/: sops_secret moves them
                    "previous_path": os.path.join(tree_dir, component["name"], f"secret-{secret['name']}.sops.yaml"),
                    "generate": {key: {k: v for k, v in spec.items() if k != "var"} for key, spec in keys.items()},
                    "value_vars": {key: spec["var"] for key, spec in keys.items() if spec.get("var")},
                }
            )
    return secrets


NETWORK = "network-policies"


def prepare(
    components: Sequence[Mapping[str, Any]], secrets: Sequence[Mapping[str, Any]] = (), network: Optional[Mapping[str, Any]] = None
) -> Tuple[List[Dict[str, Any]], Dict[str, List[str]]]:
    """What both modes deliver, made once: the components in dependency order, with the checksum of what each workload
    reads (``secrets``: the sops_secret results), and a last component of NetworkPolicies derived from them all
    (``network``: ``{enabled, ingress_namespaces}``); and who reads each Secret."""
    ordered, readers = with_checksums(order_components(components), secret_checksums(secrets))
    if network and network.get("enabled"):
        objects = [obj for component in ordered for obj in component["objects"]] + [obj for c in ordered for h in c["helm"] for obj in chart_objects(h)]
        ours = [ns["metadata"]["name"] for ns in namespace_objects(ordered)]
        policies = network_policies(objects, ours, list(network.get("ingress_namespaces") or []), COMMON_LABELS)
        if policies:
            last = normalize_component({"name": NETWORK, "objects": policies, "needs": [c["name"] for c in ordered]}, ours[0] if ours else "default")
            ordered.append(last)
    return ordered, readers


def delivery_plan(
    components: Sequence[Mapping[str, Any]], secrets: Sequence[Mapping[str, Any]] = (), network: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
    """What apply mode needs: every object in dependency order, in batches (see ``apply_batches``), prepared as
    ``prepare`` does; what it applies (``refs``: every object and Secret; ``charts``: every Helm release) for the
    record that the next run prunes by; who reads each Secret."""
    ordered, readers = prepare(components, secrets, network)
    batches = apply_batches(ordered, namespace_objects(ordered))
    refs = [_ref(obj) for batch in batches for obj in batch["objects"]]
    refs += [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": s["name"], "namespace": s["namespace"]}} for c in ordered for s in c["secrets"]]
    charts = [{"namespace": h["namespace"], "name": h["name"], "keeps_data": bool(h.get("keeps_data"))} for c in ordered for h in c["helm"]]
    return {"components": [c["name"] for c in ordered], "batches": batches, "refs": refs, "charts": charts, "readers": readers}


def _ref(obj: Mapping[str, Any]) -> Dict[str, Any]:
    metadata = {"name": obj["metadata"]["name"], **({"namespace": obj["metadata"]["namespace"]} if obj["metadata"].get("namespace") else {})}
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": metadata}


CHECKSUM = "homelab.ai/checksum"


def _reads(pod: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """The Secrets and ConfigMaps a pod reads: env, envFrom, volumes (projected ones too)."""
    found = set()
    for container in list(pod.get("containers") or []) + list(pod.get("initContainers") or []):
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            if source.get("secretKeyRef"):
                found.add(("Secret", source["secretKeyRef"]["name"]))
            if source.get("configMapKeyRef"):
                found.add(("ConfigMap", source["configMapKeyRef"]["name"]))
        for env_from in container.get("envFrom") or []:
            if env_from.get("secretRef"):
                found.add(("Secret", env_from["secretRef"]["name"]))
            if env_from.get("configMapRef"):
                found.add(("ConfigMap", env_from["configMapRef"]["name"]))
    for volume in pod.get("volumes") or []:
        sources = [volume, *((volume.get("projected") or {}).get("sources") or [])]
        for source in sources:
            if source.get("secret"):
                found.add(("Secret", source["secret"].get("secretName") or source["secret"].get("name")))
            if source.get("configMap"):
                found.add(("ConfigMap", source["configMap"]["name"]))
    return sorted(found)


def secret_checksums(results: Sequence[Mapping[str, Any]]) -> Dict[str, str]:
    """``namespace/name`` -> checksum, from the results of the sops_secret loop over ``delivery_secrets``."""
    return {f"{r['item']['namespace']}/{r['item']['name']}": str(r["checksum"]) for r in results if r.get("checksum") and r.get("item")}


def with_checksums(components: Sequence[Mapping[str, Any]], secrets: Mapping[str, str]) -> Tuple[List[Dict[str, Any]], Dict[str, List[str]]]:
    """The components with a checksum of what each workload reads on its pod template, and who reads each Secret.

    A pod reads its Secrets and ConfigMaps at start only: a new value reaches it when the pod template changes. The
    annotation ``homelab.ai/checksum`` covers every Secret (``secrets``: ``namespace/name`` -> the sha256 of its
    encrypted file, from sops_secret) and rendered ConfigMap the pod reads. The second value maps ``namespace/name``
    of each Secret to the workloads that restart when it changes, for the summary.
    """
    configmaps = {
        f"{obj['metadata']['namespace']}/{obj['metadata']['name']}": hashlib.sha256(dump({k: obj.get(k) for k in ("data", "binaryData")}).encode()).hexdigest()
        for component in components
        for obj in component["objects"]
        if obj["kind"] == "ConfigMap"
    }
    readers: Dict[str, List[str]] = {}
    annotated = []
    for component in components:
        objects = []
        for obj in component["objects"]:
            template = (obj.get("spec") or {}).get("template") if obj["kind"] in _WORKLOADS else None
            if template:
                namespace = obj["metadata"]["namespace"]
                parts = []
                for kind, name in _reads(template.get("spec") or {}):
                    key = f"{namespace}/{name}"
                    checksum = (secrets if kind == "Secret" else configmaps).get(key)
                    if checksum:
                        parts.append(f"{kind}/{name}={checksum}")
                    if kind == "Secret":
                        readers.setdefault(key, []).append(f"{obj['kind']} {obj['metadata']['name']}")
                if parts:
                    obj = copy.deepcopy(obj)
                    metadata = obj["spec"]["template"].setdefault("metadata", {})
                    metadata["annotations"] = {**(metadata.get("annotations") or {}), CHECKSUM: hashlib.sha256("\n".join(parts).encode()).hexdigest()}
            objects.append(obj)
        annotated.append({**component, "objects": objects})
    return annotated, readers


def gpu_workloads_of(components: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Just the name and GPU workloads of each component: what the VRAM plan reads, without the objects."""
    return [{"name": c["name"], "gpu_workloads": list(c.get("gpu_workloads") or [])} for c in components]


def endpoints(components: Sequence[Mapping[str, Any]]) -> List[Dict[str, str]]:
    """The endpoints the components announce, in delivery order, for the summary."""
    return [endpoint for component in order_components(components) for endpoint in (component.get("summary") or {}).get("endpoints") or []]
