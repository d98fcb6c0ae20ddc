# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The inventory as the roles see it: validated, defaults filled in, one source of truth.

``build_inventory`` takes the shared ``homelab_ai_*`` variables of the controller and the variables of
every node host, and returns an ``Inventory`` or raises ``InputError`` with every problem found.
Nothing here touches the network or the disk.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import asdict, dataclass, field
from typing import AbstractSet, Any, Callable, Dict, List, Mapping, Optional, Sequence

from ._formats import label_key, label_value, read_bool, read_choice, read_int, read_quantity, unknown_keys
from ._gpu_entries import MAX_GPU_MEMORY, gpu_entry
from ._gpus import compare_gpus, gpus_from_facts
from ._names import is_dns_label, is_dns_subdomain, slug
from ._problems import InputError, Problem, suggest
from ._sources import Source, SourceError, parse_source

__all__ = [
    "BACKENDS",
    "DEFAULTS",
    "MODEL_KEYS",
    "MODES",
    "NODE_VARIABLES",
    "SHARED_VARIABLES",
    "Gpu",
    "Inventory",
    "Model",
    "Node",
    "build_inventory",
    "check_variable_names",
]

BACKENDS = ("llamacpp", "ollama")
MODES = ("chat", "embedding", "completion")
# llama-server's --pooling of an embedding model (llama.cpp's LLAMA_POOLING_TYPE_*, rank aside: a reranker's)
POOLINGS = ("none", "mean", "cls", "last")
DISTRIBUTIONS = ("k3s", "generic")
# where each distribution runs its ingress controller: k3s ships Traefik in kube-system
INGRESS_NAMESPACES = {"k3s": "kube-system", "generic": "ingress-nginx"}
# the IngressClass each distribution's controller answers to ("": the cluster's default class)
INGRESS_CLASSES = {"k3s": "traefik", "generic": ""}
# how LoadBalancer Services get their address: k3s's ServiceLB takes host ports on every node (Traefik holds 80 and
# 443 there); an address pool (MetalLB, kube-vip, Cilium) gives each Service its own address (loadBalancerIP)
LOAD_BALANCERS = ("servicelb", "address-pool")
DEFAULT_LOAD_BALANCERS = {"k3s": "servicelb", "generic": "address-pool"}
DEPLOY_MODES = ("render", "apply")

# Shared variables of the controller and their defaults (documented in roles/preflight/meta/argument_specs.yml,
# which a unit test keeps equal to this table).
DEFAULTS: Dict[str, Any] = {
    "homelab_ai_cluster_name": "homelab",
    "homelab_ai_mode": "render",
    "homelab_ai_namespace": "ai",
    "homelab_ai_render_dir": "build",
    "homelab_ai_kube_distribution": "k3s",
    "homelab_ai_models": [],
    "homelab_ai_node_group": "homelab_ai_nodes",
    "homelab_ai_sops_age_recipients": [],
    "homelab_ai_apply_timeout": 600,
    # the VRAM plan fails the run when what shares a GPU may need more than it holds; true only warns
    "homelab_ai_vram_overcommit": False,
    # gated Hugging Face repositories; the pull Jobs and the VRAM plan use it
    "homelab_ai_hf_token": "",
    # where the tree lies in the Git repository Flux reads; empty: ./<cluster name> (the render dir is the repository)
    "homelab_ai_flux_path": "",
    # the GitRepository (namespace flux-system) that holds the tree; flux bootstrap names its own flux-system
    "homelab_ai_flux_source": "flux-system",
    # what holds data is never deleted unless asked: volume claims and namespaces (apply mode), secret files (both)
    "homelab_ai_prune_data": False,
    # variables of the user's own that look like the collection's (the preflight refuses look-alikes otherwise)
    "homelab_ai_allowed_variables": [],
    # NetworkPolicies: the stack's namespace denies ingress but for what its components use of each other
    "homelab_ai_network_policies": True,
    # where the ingress controller runs; empty: the distribution's (Traefik in kube-system on k3s, else ingress-nginx)
    "homelab_ai_ingress_namespace": "",
    # empty: the distribution's (k3s: servicelb, traefik)
    "homelab_ai_load_balancer": "",
    "homelab_ai_ingress_class": "",
    # the StorageClass of every volume, and of the model caches; empty: Longhorn's (the preflight's _storage)
    "homelab_ai_storage_class": "",
    "homelab_ai_models_storage_class": "",
    # apply mode asks only the nodes that declare no homelab_ai_gpus (over SSH, playbooks/gpu_facts.yml); true: all of them
    "homelab_ai_verify_gpus": False,
}
SHARED_VARIABLES = frozenset(DEFAULTS) | frozenset(
    {
        "homelab_ai_sops_age_key_file",
        "homelab_ai_kubeconfig",
        "homelab_ai_kube_context",
        "homelab_ai_inventory",  # the fact preflight sets
    }
)
# Variables of a node host.
NODE_VARIABLES = frozenset({"homelab_ai_gpus", "homelab_ai_gpu_sharing", "homelab_ai_node_name", "homelab_ai_node_labels", "homelab_ai_gpu_facts"})

SHARING_KEYS = ("replicas", "rename_by_default", "fail_requests_greater_than_one")
MODEL_KEYS = (
    "name",
    "backend",
    "source",
    "sha256",
    "mode",
    "context",
    "node",
    "gpu_layers",
    "layers",
    "pooling",
    "parallel",
    "scale_to_zero",
    "size",
    "cache_size",
    "vram",
    "args",
)
# KubeElasti 0.1.24 names a scaled-to-zero Service's private twin elasti-<name>-pvt-<10 characters>, untruncated
ELASTI_NAME_MAX = 41
# Bounds past which a value is a slip, not a choice (a context of 10^20, parallel of 10^9)
MAX_CONTEXT = 2**21  # 2M tokens: more than any GGUF model takes
MAX_PARALLEL = 256
MAX_GPU_LAYERS = 999  # 999 means all; llama.cpp caps it at the model's layers
MAX_SHARING = 64
MAX_APPLY_TIMEOUT = 86400
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_REPO_PATH = re.compile(r"^(\./)?[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Gpu:
    id: str  # <node>/<index>, stable across runs
    vendor: str
    model: str
    memory: int  # bytes usable by workloads on one device (VRAM, or GTT for an APU)
    count: int
    replicas: int  # 1 = exclusive; >1 = time-sliced into that many schedulable units per device
    apu: bool
    rename_by_default: bool = False  # NVIDIA: advertise shared GPUs as nvidia.com/gpu.shared
    fail_requests_greater_than_one: bool = True  # NVIDIA: refuse pods that ask for more than one shared GPU
    source: str = "declared"  # declared (homelab_ai_gpus) or detected (homelab_ai_gpu_facts, where none is declared)


@dataclass
class Node:
    host: str  # inventory hostname
    name: str  # Kubernetes node name
    gpus: List[Gpu]
    labels: Dict[str, str]
    # GIDs owning the node's GPU device nodes (render nodes, /dev/kfd), where gpu_facts ran: supplementalGroups of GPU pods
    device_gids: List[int] = field(default_factory=list)

    @property
    def vendors(self) -> List[str]:
        return sorted({gpu.vendor for gpu in self.gpus})


@dataclass
class Model:
    name: str
    slug: str  # DNS-label form of the name, for object names
    backend: str
    source: str
    source_info: Dict[str, str]
    sha256: Optional[str]
    mode: str
    context: int
    node: Optional[str]  # Kubernetes node name
    gpu_vendor: Optional[str]
    gpu_layers: int
    layers: Optional[int]  # the model's block count, for a VRAM plan without its GGUF header
    pooling: Optional[str]  # how an embedding model pools its tokens (None: as its GGUF says; the VRAM plan checks)
    parallel: int
    scale_to_zero: bool
    size: Optional[int]
    cache_size: Optional[int]
    vram: Optional[int]
    args: List[str]


@dataclass
class Flux:
    path: str  # the tree's path in the Git repository, ./-relative as Flux's spec.path
    source: str  # name of the GitRepository in flux-system


@dataclass
class Network:
    enabled: bool
    ingress_namespaces: List[str]
    load_balancer: str = "servicelb"  # LOAD_BALANCERS
    ingress_class: str = "traefik"  # "": the cluster's default IngressClass


@dataclass
class Inventory:
    cluster_name: str
    mode: str
    namespace: str
    render_dir: str
    tree_dir: str
    distribution: str
    nodes: List[Node]
    models: List[Model]
    vendors: List[str] = field(default_factory=list)
    apply_timeout: int = 600
    vram_overcommit: bool = False
    flux: Flux = field(default_factory=lambda: Flux("./homelab", "flux-system"))
    network: Network = field(default_factory=lambda: Network(True, ["kube-system"]))
    prune_data: bool = False
    warnings: List[str] = field(default_factory=list)  # what the run should show but not fail on

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def node(self, name: str) -> Optional[Node]:
        for node in self.nodes:
            if name in (node.name, node.host):
                return node
        return None


def check_variable_names(names: Sequence[str], known: Sequence[str], prefixes: Sequence[str], allowed: Sequence[str] = ()) -> List[Problem]:
    """Misspelled and look-alike variables: a name under one of our ``prefixes`` that no role declares, or a name
    close to one that is declared (``stable_difusion_enabled``, ``longhorn_enable``). Such a name would be ignored
    silently, so it is an error, unless the user names it in ``homelab_ai_allowed_variables`` (a variable of their own).
    """
    declared = set(known)
    problems = []
    for name in sorted(set(names) - declared - set(allowed)):
        if name.startswith(("_", "homelab_ai_component_")) or name.startswith(_ANSIBLE_PREFIXES):  # private, or Ansible's own
            continue
        ours = name.startswith(tuple(prefix + "_" for prefix in prefixes))
        close = difflib.get_close_matches(name, sorted(declared), n=1, cutoff=0.85)
        if not ours and not close:
            continue
        problems.append(
            Problem(
                name,
                f"is not a variable of homelab.ai{f' (did you mean {close[0]}?)' if close else suggest(name, declared)}",
                "correct the name (the shared and role variables are in the roles' meta/argument_specs.yml, a node's"
                " homelab_ai_gpus, homelab_ai_gpu_sharing, homelab_ai_node_name and homelab_ai_node_labels under Nodes"
                " in the README's inventory section); if it is a variable of your own,"
                " list it in homelab_ai_allowed_variables",
            )
        )
    return problems


_ANSIBLE_PREFIXES = ("ansible_", "inventory_", "group_names", "groups", "hostvars", "playbook_", "role_", "omit", "molecule_")


def build_inventory(shared: Mapping[str, Any], hosts: Mapping[str, Mapping[str, Any]], *, cwd: Optional[str] = None) -> Inventory:
    """Validate and normalise; ``hosts`` maps each node's inventory hostname to its variables."""
    problems: List[Problem] = []
    values = {**DEFAULTS, **{key: value for key, value in shared.items() if value is not None}}

    cluster = _choice_str(values, "homelab_ai_cluster_name", problems, check=is_dns_label, what="a DNS label (lower case letters, digits, '-')")
    mode = read_choice(values, "homelab_ai_mode", DEPLOY_MODES, problems)
    namespace = _choice_str(values, "homelab_ai_namespace", problems, check=is_dns_label, what="a DNS label (lower case letters, digits, '-')")
    distribution = read_choice(values, "homelab_ai_kube_distribution", DISTRIBUTIONS, problems)
    render_dir = values["homelab_ai_render_dir"]
    if not isinstance(render_dir, str) or not render_dir:
        problems.append(Problem("homelab_ai_render_dir", f"{render_dir!r} is not a path", "set a directory such as build"))
        render_dir = "build"
    render_dir = os.path.abspath(os.path.join(cwd or os.getcwd(), os.path.expanduser(render_dir)))
    apply_timeout = read_int("homelab_ai_apply_timeout", values["homelab_ai_apply_timeout"], problems, minimum=1, default=600, maximum=MAX_APPLY_TIMEOUT)

    vram_overcommit = read_bool("homelab_ai_vram_overcommit", values["homelab_ai_vram_overcommit"], problems, False)
    prune_data = read_bool("homelab_ai_prune_data", values["homelab_ai_prune_data"], problems, False)
    flux = _flux(values, str(cluster), problems)
    ingress = values["homelab_ai_ingress_namespace"] or INGRESS_NAMESPACES.get(str(distribution), "ingress-nginx")
    if not is_dns_label(ingress):
        problems.append(Problem("homelab_ai_ingress_namespace", f"{ingress!r} is not a namespace name", "use the namespace the ingress controller runs in"))
    load_balancer = values["homelab_ai_load_balancer"] or DEFAULT_LOAD_BALANCERS.get(str(distribution), "address-pool")
    if load_balancer not in LOAD_BALANCERS:
        problems.append(
            Problem(
                "homelab_ai_load_balancer",
                f"{load_balancer!r} is not a kind of load balancer{suggest(str(load_balancer), LOAD_BALANCERS)}",
                "use servicelb (k3s's own, host ports on every node) or address-pool (MetalLB, kube-vip, Cilium: an address per Service)",
            )
        )
    ingress_class = values["homelab_ai_ingress_class"] or INGRESS_CLASSES.get(str(distribution), "")
    network = Network(
        read_bool("homelab_ai_network_policies", values["homelab_ai_network_policies"], problems, True), [str(ingress)], str(load_balancer), str(ingress_class)
    )
    warnings: List[str] = []
    nodes = [_node(host, hvars, problems, warnings) for host, hvars in hosts.items()]
    # a node whose GPU entry (declared, detected or its sharing) is wrong has been reported already: its models are not "without GPU"
    flawed = {host for host, hvars in hosts.items() if any(p.where.startswith(f"{host}: homelab_ai_gpu") for p in problems)}
    _unique([(node.name, f"node {node.host}") for node in nodes], "homelab_ai_node_name", "give each node its own Kubernetes node name", problems)

    raw_models = values["homelab_ai_models"]
    models: List[Model] = []
    indexed: List[tuple] = []
    if not isinstance(raw_models, list):
        problems.append(Problem("homelab_ai_models", f"must be a list of models, got {type(raw_models).__name__}", "write one '- name: ...' entry per model"))
    else:
        for index, raw in enumerate(raw_models):
            model = _model(index, raw, nodes, problems, flawed)
            if model:
                models.append(model)
                indexed.append((index, model))
        _duplicates(indexed, problems)

    if problems:
        raise InputError(problems)
    vendors = sorted({gpu.vendor for node in nodes for gpu in node.gpus})
    return Inventory(
        cluster_name=str(cluster),
        mode=str(mode),
        namespace=str(namespace),
        render_dir=render_dir,
        tree_dir=os.path.join(render_dir, str(cluster)),
        distribution=str(distribution),
        nodes=nodes,
        models=models,
        vendors=vendors,
        apply_timeout=apply_timeout,
        vram_overcommit=vram_overcommit,
        flux=flux,
        network=network,
        prune_data=prune_data,
        warnings=warnings,
    )


# --- pieces -----------------------------------------------------------------------------------


def _flux(values: Mapping[str, Any], cluster: str, problems: List[Problem]) -> Flux:
    path = values["homelab_ai_flux_path"] or f"./{cluster}"
    parts = [part for part in path.split("/") if part not in ("", ".")] if isinstance(path, str) else []
    if not isinstance(path, str) or not _REPO_PATH.match(path) or not parts or ".." in parts:
        problems.append(
            Problem(
                "homelab_ai_flux_path",
                f"{path!r} is not a path inside a Git repository",
                "write the tree's directory relative to the repository root, such as ./clusters/homelab (letters, digits, '.', '_', '-', '/', no '..')",
            )
        )
        parts = [cluster]
    source = _choice_str(values, "homelab_ai_flux_source", problems, check=is_dns_subdomain, what="the name of a Flux GitRepository")
    return Flux(path="./" + "/".join(parts), source=source)


def _choice_str(values: Mapping[str, Any], key: str, problems: List[Problem], *, check: Callable[[object], bool], what: str) -> str:
    value = values[key]
    if not isinstance(value, str) or not check(value):
        problems.append(Problem(key, f"{value!r} is not {what}", f"set {key} to {what}, for example {DEFAULTS[key]!r}"))
        return str(DEFAULTS[key])
    return value


def _node(host: str, hvars: Mapping[str, Any], problems: List[Problem], warnings: List[str]) -> Node:
    name = hvars.get("homelab_ai_node_name") or host
    if not is_dns_subdomain(name):
        problems.append(Problem(f"{host}: homelab_ai_node_name", f"{name!r} is not a Kubernetes node name", "use the name `kubectl get nodes` shows"))
        name = str(name)
    labels_raw = hvars.get("homelab_ai_node_labels") or {}
    labels: Dict[str, str] = {}
    if not isinstance(labels_raw, Mapping):
        problems.append(Problem(f"{host}: homelab_ai_node_labels", "must be a mapping of label to value", "write key: value pairs"))
    else:
        for key, value in labels_raw.items():
            text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            if label_key(str(key)) or label_value(text):
                problems.append(
                    Problem(
                        f"{host}: homelab_ai_node_labels.{key}",
                        f"{key}={text} is not a valid Kubernetes label",
                        "use [prefix/]name with letters, digits, '-', '_' and '.' (values up to 63 characters)",
                    )
                )
            elif _nfd_refuses(str(key)):
                problems.append(
                    Problem(
                        f"{host}: homelab_ai_node_labels.{key}",
                        f"{_nfd_refuses(str(key))}: node-feature-discovery, which puts the labels on the nodes, would not set it",
                        "use a prefix of your own, such as homelab.ai/ or example.com/",
                    )
                )
            labels[str(key)] = text
    facts = hvars.get("homelab_ai_gpu_facts")
    if facts is not None and not isinstance(facts, Mapping):
        problems.append(Problem(f"{host}: homelab_ai_gpu_facts", "is not what homelab.ai.gpu_facts sets", "remove the variable; the gpu_facts module sets it"))
        facts = None
    gpus_raw = hvars.get("homelab_ai_gpus")
    source = "declared"
    if gpus_raw is None and facts is not None:
        # nothing declared: plan with what the node reported (apply mode, after gpu_facts ran over SSH)
        gpus_raw, source = gpus_from_facts(host, facts, problems), "detected"
    gpus_raw = gpus_raw or []
    gpus: List[Gpu] = []
    if not isinstance(gpus_raw, list):
        problems.append(Problem(f"{host}: homelab_ai_gpus", "must be a list of GPUs", "write one '- vendor: ...' entry per kind of GPU"))
        gpus_raw = []
    node_sharing = hvars.get("homelab_ai_gpu_sharing")
    for index, raw in enumerate(gpus_raw):
        where = f"{host}: homelab_ai_gpus[{index}]"
        entry = gpu_entry(where, raw, problems)
        if entry is None:
            continue
        vendor = entry["vendor"]
        if "sharing" in raw or node_sharing is None:
            replicas, rename, fail_gt_one = _sharing(f"{where}.sharing", vendor, raw.get("sharing"), problems)
        else:  # the node's default knob; NVIDIA-only options do not apply to the node's other GPUs
            default = node_sharing
            if isinstance(default, Mapping) and vendor != "nvidia":
                default = {key: value for key, value in default.items() if key not in SHARING_KEYS[1:]}
            replicas, rename, fail_gt_one = _sharing(f"{host}: homelab_ai_gpu_sharing ({vendor})", vendor, default, problems)
        gpus.append(
            Gpu(
                id=f"{name}/gpu{index}",
                vendor=vendor,
                model=entry["model"],
                memory=entry["memory"] or 0,
                count=entry["count"],
                replicas=replicas,
                apu=entry["apu"],
                rename_by_default=rename,
                fail_requests_greater_than_one=fail_gt_one,
                source=source,
            )
        )
    for vendor in sorted({g.vendor for g in gpus}):
        settings = {(g.replicas, g.rename_by_default, g.fail_requests_greater_than_one) for g in gpus if g.vendor == vendor}
        if len(settings) > 1:
            problems.append(
                Problem(
                    f"{host}: homelab_ai_gpus",
                    f"the {vendor} GPUs of this node are shared differently, but the {vendor} device plugin shares all GPUs of a node alike",
                    "give every GPU of one vendor on a node the same sharing setting",
                )
            )
    device_gids: List[int] = []
    if facts is not None:
        if source == "declared":
            found, notes, corrected = compare_gpus(host, [asdict(g) for g in gpus], facts)
            problems.extend(found)
            warnings.extend(notes)
            for gpu in gpus:  # the plan must not count on memory the GPU does not have
                gpu.memory = min(gpu.memory, corrected.get(gpu.vendor, gpu.memory))
        device_gids = [int(gid) for gid in facts.get("device_gids") or [] if isinstance(gid, int)]
    return Node(host=host, name=name, gpus=gpus, labels=labels, device_gids=device_gids)


def _nfd_refuses(key: str) -> str:
    """Why nfd-master (v0.19, pkg/apis/nfd/validate) would not set a label, or "" when it would."""
    prefix = key.split("/", 1)[0] if "/" in key else ""
    if not prefix:
        return "a label without a prefix is set as feature.node.kubernetes.io/" + key
    allowed = ("feature.node.kubernetes.io", "profile.node.kubernetes.io")
    if (prefix == "kubernetes.io" or prefix.endswith(".kubernetes.io")) and not (prefix in allowed or prefix.endswith(tuple("." + a for a in allowed))):
        return f"the {prefix} prefix belongs to Kubernetes"
    return ""


def _sharing(where: str, vendor: str, raw: Any, problems: List[Problem]) -> tuple:
    """(replicas, rename_by_default, fail_requests_greater_than_one) of the sharing knob."""
    if raw is None or raw == "exclusive":
        return 1, False, True
    if not isinstance(raw, Mapping):
        problems.append(Problem(where, f"{raw!r} is not a sharing setting", "write exclusive, or {replicas: N} with N of at least 1"))
        return 1, False, True
    allowed = SHARING_KEYS if vendor == "nvidia" else ("replicas",)
    for key in raw:
        if key not in allowed:
            nvidia_only = key in SHARING_KEYS
            problems.append(
                Problem(
                    f"{where}.{key}",
                    "is an NVIDIA time-slicing option" if nvidia_only else f"is not a sharing option{suggest(str(key), SHARING_KEYS)}",
                    "remove it" if nvidia_only else f"use {', '.join(allowed)}",
                )
            )
    replicas = read_int(f"{where}.replicas", raw.get("replicas"), problems, minimum=1, default=1, maximum=MAX_SHARING)
    if vendor == "amd" and replicas > 1:
        problems.append(
            Problem(
                f"{where}.replicas",
                f"AMD's GPU device plugin has no time-slicing, so {replicas} replicas cannot be honoured",
                "use sharing: exclusive for AMD GPUs, and put the models that share this GPU into one llama.cpp or Ollama server",
            )
        )
        replicas = 1
    rename = read_bool(f"{where}.rename_by_default", raw.get("rename_by_default"), problems, False)
    fail_gt_one = read_bool(f"{where}.fail_requests_greater_than_one", raw.get("fail_requests_greater_than_one"), problems, True)
    return replicas, rename, fail_gt_one


def _model(index: int, raw: Any, nodes: Sequence[Node], problems: List[Problem], flawed: AbstractSet[str] = frozenset()) -> Optional[Model]:
    where = f"homelab_ai_models[{index}]"
    if not isinstance(raw, Mapping):
        problems.append(Problem(where, f"{raw!r} is not a mapping", "write name, backend and source for each model"))
        return None
    name = raw.get("name")
    if isinstance(name, str):
        where = f"homelab_ai_models[{index}] ({name})"
    count_before = len(problems)
    unknown_keys(where, raw, MODEL_KEYS, problems)
    if name is None:
        problems.append(Problem(f"{where}.name", "is missing", "add name: the name clients send to LiteLLM"))
    elif not isinstance(name, str) or not _MODEL_NAME.match(name):
        problems.append(
            Problem(f"{where}.name", f"{name!r} is not a model name", "use letters, digits and . _ : / - (this is the name clients send to LiteLLM)")
        )
    backend = raw.get("backend")
    if backend is None:
        problems.append(Problem(f"{where}.backend", "is missing", f"add backend: {' or '.join(BACKENDS)}"))
    elif backend not in BACKENDS:
        problems.append(Problem(f"{where}.backend", f"{backend!r} is not a backend{suggest(str(backend), BACKENDS)}", f"use one of {', '.join(BACKENDS)}"))
    source: Optional[Source] = None
    if raw.get("source") is None:
        problems.append(Problem(f"{where}.source", "is missing", "add source: hf://org/repo/file.gguf, https://host/file.gguf or ollama://model:tag"))
    else:
        try:
            source = parse_source(raw.get("source"))
        except SourceError as exc:
            problems.append(Problem(f"{where}.source", str(exc), "see the model catalog in the README"))
    if source and backend == "ollama" and source.scheme != "ollama":
        problems.append(
            Problem(
                f"{where}.source", f"{source.uri!r} is not an Ollama model", "use ollama://model:tag for backend ollama, or backend llamacpp for a GGUF file"
            )
        )
    if source and backend == "llamacpp" and source.scheme == "ollama":
        problems.append(
            Problem(
                f"{where}.source",
                f"{source.uri!r} is an Ollama model",
                "use hf://org/repo/file.gguf or https://.../file.gguf for backend llamacpp, or backend ollama",
            )
        )
    sha256 = raw.get("sha256")
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.match(sha256.lower())):
        problems.append(Problem(f"{where}.sha256", f"{sha256!r} is not a sha256 digest", "write the 64 hex digits of the file's sha256, or leave it out"))
        sha256 = None
    mode = raw.get("mode", "chat")
    if mode not in MODES:
        problems.append(Problem(f"{where}.mode", f"{mode!r} is not a mode{suggest(str(mode), MODES)}", f"use one of {', '.join(MODES)}"))
    context = read_int(f"{where}.context", raw.get("context"), problems, minimum=256, default=4096, maximum=MAX_CONTEXT)
    pooling = raw.get("pooling")
    elsewhere = (mode in MODES and mode != "embedding") or (backend in BACKENDS and backend != "llamacpp")
    if pooling is not None and (pooling not in POOLINGS or elsewhere):
        fix = f"use one of {', '.join(POOLINGS)} (the model card says which)" if pooling not in POOLINGS else "leave it out"
        why = f"{pooling!r} is not a pooling{suggest(str(pooling), POOLINGS)}" if pooling not in POOLINGS else "applies to llama.cpp embedding models only"
        problems.append(Problem(f"{where}.pooling", why, fix))
        pooling = None
    gpu_layers = read_int(f"{where}.gpu_layers", raw.get("gpu_layers"), problems, minimum=0, default=999, maximum=MAX_GPU_LAYERS)
    node_name: Optional[str] = None
    gpu_vendor: Optional[str] = None
    node_ref = raw.get("node")
    if node_ref is not None and backend == "ollama":
        problems.append(
            Problem(
                f"{where}.node",
                "is not read for an Ollama model: every Ollama model runs in the one Ollama server, on ollama_node",
                f"remove node from the model, and set ollama_node: {node_ref} to run Ollama there",
            )
        )
    elif node_ref is not None:
        node = next((n for n in nodes if node_ref in (n.host, n.name)), None)
        if node is None:
            known = [n.host for n in nodes]
            problems.append(
                Problem(
                    f"{where}.node",
                    f"{node_ref!r} is not a node of the inventory{suggest(str(node_ref), known)}",
                    f"use one of {', '.join(known) or '(no nodes: add hosts to the homelab_ai_nodes group)'}",
                )
            )
        else:
            node_name = node.name
            if node.gpus:
                gpu_vendor = node.gpus[0].vendor
            elif gpu_layers > 0 and node.host not in flawed:
                problems.append(
                    Problem(
                        f"{where}.node",
                        f"node {node_ref!r} has no GPU declared (homelab_ai_gpus)",
                        "declare the node's GPU, or set gpu_layers: 0 to run on the CPU",
                    )
                )
    elif backend == "llamacpp":
        problems.append(Problem(f"{where}.node", "is missing: a llama.cpp model runs on one node", "add node: <inventory host> to the model"))
    args = raw.get("args") or []
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        problems.append(
            Problem(f"{where}.args", f"{args!r} is not a list of strings", "write extra llama-server arguments as a list, e.g. ['--flash-attn', 'on']")
        )
        args = []
    service = f"llamacpp-{slug(str(name))}"
    if backend == "llamacpp" and read_bool(f"{where}.scale_to_zero", raw.get("scale_to_zero"), [], False) and len(service) > ELASTI_NAME_MAX:
        problems.append(
            Problem(
                f"{where}.name",
                f"its Service {service} has {len(service)} characters; for a model that scales to zero KubeElasti 0.1.24 makes a"
                " Service of 22 more, and Kubernetes allows 63",
                f"give the model a name of at most {ELASTI_NAME_MAX - len('llamacpp-')} letters and digits",
            )
        )
    model = Model(
        name=str(name),
        slug=slug(str(name)),
        backend=str(backend),
        source=str(raw.get("source")),
        # the file name too: the pull Job writes it and the server reads it under that one name (Source.filename)
        source_info={**{key: value for key, value in asdict(source).items() if value}, "filename": source.filename} if source else {},
        sha256=sha256.lower() if isinstance(sha256, str) else None,
        mode=str(mode),
        context=context,
        node=node_name,
        gpu_vendor=gpu_vendor,
        gpu_layers=gpu_layers,
        pooling=pooling,
        layers=read_int(f"{where}.layers", raw.get("layers"), problems, minimum=1, default=0, maximum=MAX_GPU_LAYERS - 1) or None,
        parallel=read_int(f"{where}.parallel", raw.get("parallel"), problems, minimum=1, default=1, maximum=MAX_PARALLEL),
        scale_to_zero=read_bool(f"{where}.scale_to_zero", raw.get("scale_to_zero"), problems, False),
        size=read_quantity(f"{where}.size", raw.get("size"), problems),
        cache_size=read_quantity(f"{where}.cache_size", raw.get("cache_size"), problems),
        vram=read_quantity(f"{where}.vram", raw.get("vram"), problems, maximum=MAX_GPU_MEMORY),
        args=list(args),
    )
    return model if len(problems) == count_before else None


def _duplicates(models: Sequence[tuple], problems: List[Problem]) -> None:
    _unique(
        [(m.name, f"homelab_ai_models[{i}]") for i, m in models],
        "homelab_ai_models",
        "model names are what clients send to LiteLLM and must be unique; rename or remove one",
        problems,
        what="the name {!r}",
    )
    _unique(
        # one entry per name: a repeated name is reported above already
        list({m.name: (m.slug, f"homelab_ai_models[{i}] ({m.name})") for i, m in reversed(models) if m.backend == "llamacpp"}.values()),
        "homelab_ai_models",
        "llama.cpp object names are made from model names; rename one so that they differ in letters or digits",
        problems,
        what="object name llamacpp-{}",
    )


def _unique(items: Sequence[tuple], where: str, fix: str, problems: List[Problem], what: str = "{}") -> None:
    seen: Dict[str, List[str]] = {}
    for key, owner in items:
        seen.setdefault(key, []).append(owner)
    for key, owners in seen.items():
        if len(owners) > 1:
            problems.append(Problem(where, f"{what.format(key)!s} is used {len(owners)} times ({', '.join(owners)})", fix))
