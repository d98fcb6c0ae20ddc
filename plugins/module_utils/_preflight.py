# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Everything the preflight checks before a role renders anything.

It sees the whole inventory at once and reports every problem in one message:
the shared variables and nodes (``_inventory``), misspelled variable names, the variables of every role
against that role's ``meta/argument_specs.yml``, sizes that are not Kubernetes quantities, and the age key.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from ._comfyui import CHECKPOINT_SUFFIXES, fixed_arg
from ._exposure import Exposure, exposure_problems
from ._formats import size_problem, variable_problems
from ._inventory import NODE_VARIABLES, SHARED_VARIABLES, build_inventory, check_variable_names
from ._placement import gpu_pod
from ._problems import InputError, Problem, suggest
from ._pull import PullRequest, check_request
from ._quantity import QuantityError, parse_quantity
from ._sops import AgeKeyError, age_recipients_from_key_file, check_recipients, default_age_key_file, how_to_make_an_age_key
from ._tree import secret_path
from ._wiring import build_wiring

__all__ = ["QUANTITY_SUFFIXES", "component_problems", "load_role_specs", "quantity_problems", "run_preflight", "spec_problems"]

# Options named like this hold Kubernetes quantities; the argument specs cannot say so themselves.
QUANTITY_SUFFIXES = ("_size", "_memory", "_vram")
_RESOURCE_KEYS = ("cpu", "memory", "ephemeral-storage")
_SIZE_KEYS = ("memory", "ephemeral-storage")


def load_role_specs(roles_dir: str) -> Dict[str, Dict[str, Any]]:
    """``{role: options of its 'main' entry point}`` for every public role of the collection."""
    specs: Dict[str, Dict[str, Any]] = {}
    for role in sorted(os.listdir(roles_dir)):
        path = os.path.join(roles_dir, role, "meta", "argument_specs.yml")
        if role.startswith("_") or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        specs[role] = ((data.get("argument_specs") or {}).get("main") or {}).get("options") or {}
    return specs


def spec_problems(role: str, options: Mapping[str, Any], values: Mapping[str, Any]) -> List[Problem]:
    """Check the values the inventory sets for a role against the role's argument spec."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    given = {name: value for name, value in values.items() if name in options}
    if not given:
        return []
    # required options may come from the role's defaults, which the inventory does not repeat
    spec = {name: {k: v for k, v in option.items() if k not in ("description", "required", "default")} for name, option in options.items()}
    result = ArgumentSpecValidator(_strip_docs(spec)).validate(given)
    problems: List[Problem] = []
    for error in result.errors:
        # Ansible's messages name the variable ("value of open_webui_expose must be one of ..."): the input is that one
        named = [name for name in given if re.search(rf"\b{re.escape(name)}\b", str(error))]
        where = max(named, key=len) if named else f"role {role}"
        problems.append(Problem(where, str(error), f"see roles/{role}/meta/argument_specs.yml for the variable's type and choices"))
    return problems


def _strip_docs(spec: Mapping[str, Any]) -> Dict[str, Any]:
    cleaned = {}
    for name, option in spec.items():
        option = {k: v for k, v in option.items() if k not in ("description", "version_added")}
        if "options" in option:
            option["options"] = _strip_docs({k: {kk: vv for kk, vv in v.items() if kk not in ("description", "default")} for k, v in option["options"].items()})
        cleaned[name] = option
    return cleaned


def quantity_problems(values: Mapping[str, Any]) -> List[Problem]:
    """Sizes and resource requests that the API server would refuse."""
    problems: List[Problem] = []
    for name, value in sorted(values.items()):
        if value is None or value == "":  # empty means "not set" for the optional sizes
            continue
        if name.endswith(QUANTITY_SUFFIXES):
            _check_quantity(name, value, problems, size=True)
        elif name.endswith("_resources") and isinstance(value, Mapping):
            for section in ("requests", "limits"):
                for key, amount in ((value.get(section) or {}) if isinstance(value.get(section), Mapping) else {}).items():
                    if key in _RESOURCE_KEYS or "/" in str(key):
                        _check_quantity(f"{name}.{section}.{key}", amount, problems, size=key in _SIZE_KEYS)
    return problems


def _check_quantity(where: str, value: Any, problems: List[Problem], *, size: bool) -> None:
    try:
        amount = parse_quantity(value)
    except QuantityError as exc:
        problems.append(Problem(where, str(exc), "write a Kubernetes quantity such as 100Gi, 512Mi or 500m"))
        return
    too_small = size_problem(where, value, int(amount)) if size else None
    if too_small:
        problems.append(too_small)


def run_preflight(
    variables: Mapping[str, Any],
    hosts: Mapping[str, Mapping[str, Any]],
    role_specs: Mapping[str, Mapping[str, Any]],
    *,
    declarations: Optional[Mapping[str, Mapping[str, Any]]] = None,
    names: Optional[Sequence[str]] = None,
    cwd: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
) -> Tuple[Dict[str, Any], List[str]]:
    """The normalised inventory as a dict and warnings, or ``InputError`` listing every problem.

    ``variables`` are the controller's variables of the collection, ``names`` every other variable name the controller
    sees (for look-alikes of ours), ``hosts`` the variables of each node host. A misspelled or look-alike name is an
    error unless ``homelab_ai_allowed_variables`` lists it.
    """
    problems: List[Problem] = []
    shared = {name: variables[name] for name in SHARED_VARIABLES if name in variables}
    known = sorted(SHARED_VARIABLES | NODE_VARIABLES | {name for options in role_specs.values() for name in options})
    prefixes = ["homelab_ai", *role_specs]
    allowed = variables.get("homelab_ai_allowed_variables") or []
    problems.extend(check_variable_names([*variables, *(names or [])], known, prefixes, allowed))
    warnings: List[str] = []
    # a host sees the variables of its groups and of group all too: a name the controller has was checked above, and
    # one that several hosts share (a group's variable) is one mistake, said once with the hosts that have it
    seen = set(variables) | set(names or [])
    by_problem: Dict[Tuple[str, str, str], List[str]] = {}
    for host, hvars in hosts.items():
        for p in check_variable_names([name for name in hvars if name not in seen], known, prefixes, allowed):
            by_problem.setdefault((p.where, p.message, p.fix), []).append(host)
    for (where, message, fix), owners in by_problem.items():
        who = f"every node ({len(owners)} hosts)" if len(owners) == len(hosts) > 1 else ", ".join(owners)
        problems.append(Problem(f"{who}: {where}", message, fix))
    for role, options in role_specs.items():
        values = {name: variables[name] for name in options if name in variables}
        problems.extend(spec_problems(role, options, values))
        problems.extend(quantity_problems(values))
        for name, value in sorted(values.items()):
            if role != "preflight" or name not in _INVENTORY_CHECKED:
                problems.extend(variable_problems(name, value))

    inventory: Optional[Dict[str, Any]] = None
    try:
        inventory = build_inventory(shared, {host: {k: v for k, v in hvars.items() if k in NODE_VARIABLES} for host, hvars in hosts.items()}, cwd=cwd).to_dict()
    except InputError as exc:
        problems.extend(exc.problems)

    if inventory is not None:
        wiring, found = _wiring(variables, role_specs, declarations or {}, inventory)
        inventory["wiring"] = wiring
        problems.extend(found)
        inventory["storage"] = _storage(_value(variables, role_specs), role_specs, problems)
        problems.extend(component_problems(variables, role_specs, inventory))
    key_file, recipients = _age(variables, env, problems)
    if problems:
        raise InputError(problems)
    assert inventory is not None
    warnings.extend(inventory.pop("warnings", []))  # declared and detected GPUs that differ harmlessly
    inventory["sops"] = {"age_key_file": key_file, "age_recipients": recipients}
    return inventory, warnings


# the shared variables that _inventory.build_inventory checks itself, with the inventory around them
_INVENTORY_CHECKED = frozenset(
    {"homelab_ai_cluster_name", "homelab_ai_namespace", "homelab_ai_models", "homelab_ai_flux_path", "homelab_ai_flux_source", "homelab_ai_mode"}
)


def _value(variables: Mapping[str, Any], role_specs: Mapping[str, Mapping[str, Any]]) -> Any:
    """A role variable as the role sees it: the inventory's value, else the role's default."""

    def value(role: str, name: str) -> Any:
        return variables[name] if name in variables else (role_specs.get(role, {}).get(name) or {}).get("default")

    return value


def _wiring(
    variables: Mapping[str, Any], role_specs: Mapping[str, Mapping[str, Any]], declarations: Mapping[str, Mapping[str, Any]], inventory: Mapping[str, Any]
) -> Tuple[Dict[str, Any], List[Problem]]:
    wiring, problems = build_wiring(
        declarations,
        _value(variables, role_specs),
        namespace=inventory["namespace"],
        models=inventory["models"],
        secret_file=lambda component, layer, secret: os.path.join(inventory["tree_dir"], secret_path({"name": component, "layer": layer}, secret)),
        network=inventory["network"],
        node_address=inventory["nodes"][0]["name"] if inventory["nodes"] else "",
    )
    exposures = [
        Exposure(**{k: v for k, v in e["exposure"].items() if k not in ("url", "how", "title")}) for e in wiring.values() if e["enabled"] and e["exposure"]
    ]
    problems.extend(exposure_problems(exposures, inventory["network"]["load_balancer"], inventory["distribution"]))
    for index, model in enumerate(inventory["models"]):
        backend = wiring.get(model["backend"])
        if backend is not None and not backend["enabled"]:
            problems.append(
                Problem(
                    f"homelab_ai_models[{index}] ({model['name']})",
                    f"its backend is off ({backend['role']}_enabled is false): nothing would serve it, and LiteLLM would have no route",
                    f"set {backend['role']}_enabled: true, or remove the model from the catalog",
                )
            )
    return wiring, problems


def _storage(value: Any, role_specs: Mapping[str, Mapping[str, Any]], problems: List[Problem]) -> Dict[str, str]:
    """The StorageClasses of the volumes: ``data`` (replicated) and ``models`` (caches a pull Job can fill again).

    One switch for all, ``homelab_ai_storage_class``, else Longhorn's classes where Longhorn is on (its replicated
    ``longhorn`` and its one-replica, node-local models class); a role's ``*_storage_class`` wins for its volume.
    """
    longhorn = bool(value("longhorn", "longhorn_enabled"))
    longhorn_classes = ("longhorn", str(value("longhorn", "longhorn_models_storage_class")))
    data = value("preflight", "homelab_ai_storage_class") or ("longhorn" if longhorn else "")
    models = value("preflight", "homelab_ai_models_storage_class") or (longhorn_classes[1] if longhorn and data == "longhorn" else data)
    unnamed = [
        name
        for role, options in sorted(role_specs.items())
        if role != "longhorn" and value(role, f"{role}_enabled")
        for name in options
        if name.endswith("_storage_class") and not value(role, name)
    ]
    if not data and unnamed:
        problems.append(
            Problem(
                "homelab_ai_storage_class",
                f"is empty and longhorn_enabled is false: the volumes of {', '.join(unnamed)} would have no StorageClass",
                "name the cluster's StorageClass (`kubectl get storageclass`; local-path on k3s), or longhorn_enabled: true",
            )
        )
    if not longhorn:
        roles = sorted(role for role in role_specs if role != "longhorn")  # its own models class is what it would create
        named = [(name, value(role, name)) for role in roles for name in role_specs[role] if name.endswith("_storage_class")]
        named += [("homelab_ai_storage_class", data), ("homelab_ai_models_storage_class", models)]
        for name, chosen in named:
            if chosen in longhorn_classes and (value("preflight", name) if name.startswith("homelab_ai_") else True):
                problems.append(
                    Problem(name, f"is Longhorn's class {chosen!r}, and longhorn_enabled is false", "name the cluster's StorageClass, or leave a role's empty")
                )
    return {"data": str(data), "models": str(models)}


def component_problems(variables: Mapping[str, Any], role_specs: Mapping[str, Mapping[str, Any]], inventory: Mapping[str, Any]) -> List[Problem]:
    """What no single variable shows: settings of the roles that do not fit the catalog, the nodes or each other."""
    value = _value(variables, role_specs)
    problems: List[Problem] = []
    hosts = [node["host"] for node in inventory["nodes"]]
    ollama_node = value("ollama", "ollama_node")
    ollama = _node_of(inventory, ollama_node)
    if value("ollama", "ollama_enabled") and ollama_node and ollama is None:
        problems.append(
            Problem("ollama_node", f"{ollama_node!r} is not a node of the inventory", f"use one of {', '.join(hosts)}, or leave it empty to run on the CPU")
        )
    elif value("ollama", "ollama_enabled") and ollama is not None and not ollama["gpus"] and value("ollama", "ollama_gpu"):
        with_gpu = [n["host"] for n in inventory["nodes"] if n["gpus"]]
        problems.append(
            Problem(
                "ollama_node",
                f"{ollama_node!r} declares no GPU (homelab_ai_gpus), so Ollama would run on its CPU",
                "declare the node's GPU in homelab_ai_gpus"
                + (f", or put Ollama on a node with one ({', '.join(with_gpu)})" if with_gpu else "")
                + ", or set ollama_gpu: false to run it on this node's CPU",
            )
        )
    if value("stable_diffusion", "stable_diffusion_enabled"):
        sd_node = value("stable_diffusion", "stable_diffusion_node")
        node = _node_of(inventory, sd_node)
        vendors = sorted({g["vendor"] for g in node["gpus"]}) if node else []
        if "nvidia" not in vendors:
            found = f"is not a node of the inventory ({', '.join(hosts)})" if node is None else f"has no NVIDIA GPU ({', '.join(vendors) or 'no GPU'})"
            problems.append(
                Problem(
                    "stable_diffusion_node",
                    f"{sd_node!r} {found}; the image is a CUDA build",
                    "set stable_diffusion_node to a host with an NVIDIA GPU (homelab_ai_gpus), or stable_diffusion_enabled: false",
                )
            )
        problems.extend(_stable_diffusion_problems(value))
    if value("litellm", "litellm_enabled"):
        key = value("litellm", "litellm_master_key")
        if key and not str(key).startswith("sk-"):
            problems.append(
                Problem(
                    "litellm_master_key",
                    "does not start with sk-, and LiteLLM refuses such a master key",
                    "give a key that starts with sk-, or none to have one generated",
                )
            )
        elif key and str(key).strip() == "sk-1234":
            problems.append(
                Problem(
                    "litellm_master_key",
                    "is sk-1234, the example of LiteLLM's documentation, and LiteLLM (1.104 on) refuses to start with it",
                    "give a key of your own, or none to have one generated",
                )
            )
        if value("litellm", "litellm_ingress_enabled") and not value("litellm", "litellm_ingress_host"):
            problems.append(
                Problem(
                    "litellm_ingress_host",
                    "is empty, and litellm_ingress_enabled asks for an Ingress",
                    "give the host clients use, or set litellm_ingress_enabled: false",
                )
            )
    embedding = value("open_webui", "open_webui_embedding_model")
    if value("open_webui", "open_webui_enabled") and embedding:
        embedders = [m["name"] for m in inventory["models"] if m["mode"] == "embedding"]
        if embedding not in embedders:
            problems.append(
                Problem(
                    "open_webui_embedding_model",
                    f"{embedding!r} is not an embedding model of the catalog",
                    f"use one of {', '.join(embedders)}" if embedders else "add an embedding model (mode: embedding) to homelab_ai_models, or leave it empty",
                )
            )
    if value("llamacpp", "llamacpp_enabled"):
        problems.extend(_llamacpp_image_problems(variables, role_specs, inventory))
    scaled = [m["name"] for m in inventory["models"] if m["backend"] == "llamacpp" and m["scale_to_zero"]]
    if (
        scaled
        and value("llamacpp", "llamacpp_enabled")
        and not value("llamacpp", "llamacpp_prometheus_install")
        and not value("llamacpp", "llamacpp_prometheus_url")
    ):
        problems.append(
            Problem(
                "llamacpp_prometheus_url",
                f"is empty and llamacpp_prometheus_install is false, but {', '.join(scaled)} scale to zero: KubeElasti would ask no"
                " Prometheus whether they are idle and never scale them down",
                "set llamacpp_prometheus_url to the cluster's Prometheus (and llamacpp_prometheus_uptime_filter to its own up series),"
                " or llamacpp_prometheus_install: true",
            )
        )
    return problems


def _node_of(inventory: Mapping[str, Any], ref: Any) -> Optional[Mapping[str, Any]]:
    """The inventory's node that an inventory host or Kubernetes node name names, or None."""
    return next((n for n in inventory["nodes"] if ref and ref in (n["host"], n["name"])), None)


def _llamacpp_image_problems(variables: Mapping[str, Any], role_specs: Mapping[str, Mapping[str, Any]], inventory: Mapping[str, Any]) -> List[Problem]:
    """``llamacpp_images`` given in part: a value replaces the role's whole default, so each vendor a model runs on
    needs its image there (the rest may be left out)."""
    images = variables.get("llamacpp_images")
    defaults = (role_specs.get("llamacpp", {}).get("llamacpp_images") or {}).get("default") or {}
    if not isinstance(images, Mapping) or not defaults:
        return []  # not given (the defaults hold every vendor), or not a dict (the argument spec says so)
    problems = [
        Problem(f"llamacpp_images.{key}", f"is not a vendor{suggest(str(key), list(defaults))}", f"use {', '.join(defaults)}")
        for key in images
        if key not in defaults
    ]
    needs: Dict[str, List[str]] = {}
    for model in inventory["models"]:
        if model["backend"] == "llamacpp":
            # the vendor whose image the template takes: the placement every llama.cpp pod gets
            vendor = gpu_pod(inventory, model["node"], gpu=model["gpu_layers"] > 0)["vendor"]
            needs.setdefault(vendor, []).append(model["name"])
    missing = [vendor for vendor in defaults if vendor in needs and not images.get(vendor)]
    if missing:
        runs = "; ".join(f"{', '.join(needs[v])} on {v}" for v in missing)
        problems.append(
            Problem(
                "llamacpp_images",
                f"has no image for {', '.join(missing)} ({runs}): a value given replaces the role's whole default",
                "add " + ", ".join(f"{v}: {defaults[v]}" for v in missing) + " (the role's defaults), or leave llamacpp_images out",
            )
        )
    return problems


def _stable_diffusion_problems(value: Any) -> List[Problem]:
    """ComfyUI's arguments, the checkpoints the pull Jobs fetch, and the one Open WebUI asks for."""
    problems: List[Problem] = []
    for index, arg in enumerate(value("stable_diffusion", "stable_diffusion_args") or []):
        if fixed_arg(arg):
            problems.append(
                Problem(
                    f"stable_diffusion_args[{index}]",
                    f"{arg!r} is set by the role: ComfyUI listens on the pod's loopback, behind the proxy that checks the key and the password",
                    "leave it out",
                )
            )
    model = value("stable_diffusion", "stable_diffusion_model")
    if isinstance(model, str) and model and not model.endswith(CHECKPOINT_SUFFIXES):
        problems.append(
            Problem(
                "stable_diffusion_model", f"{model!r} is not a file ComfyUI lists as a checkpoint", f"use a file ending in {', '.join(CHECKPOINT_SUFFIXES)}"
            )
        )
    checkpoints = value("stable_diffusion", "stable_diffusion_checkpoints") or []
    names = []
    for index, checkpoint in enumerate(checkpoints):
        where = f"stable_diffusion_checkpoints[{index}]"
        if not isinstance(checkpoint, Mapping) or not checkpoint.get("source") or set(checkpoint) - {"source", "sha256", "filename"}:
            problems.append(Problem(where, f"{checkpoint!r} is not a checkpoint", "give source (hf:// or https://), and sha256 and filename if you like"))
            continue
        try:
            request = PullRequest(
                source=str(checkpoint["source"]), dest="/models", sha256=str(checkpoint.get("sha256") or ""), filename=str(checkpoint.get("filename") or "")
            )
            source = check_request(request, where)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        filename = request.filename or source.filename
        if source.scheme == "ollama":
            problems.append(Problem(f"{where}.source", f"{source.uri!r} is an Ollama model", "use hf://org/repo/file.safetensors or https://.../file"))
        elif variable_problems("stable_diffusion_model", filename):
            problems.append(Problem(f"{where}.filename", f"{filename!r} is not a plain file name", "give a name of letters, digits, '.', '_', '-'"))
        names.append(filename)
    if checkpoints and isinstance(model, str) and names and model not in names:
        problems.append(
            Problem(
                "stable_diffusion_model",
                f"{model!r} is none of the checkpoints the pull Jobs place ({', '.join(names)}): Open WebUI would ask ComfyUI for a file it lacks",
                "use one of those file names, or add the checkpoint to stable_diffusion_checkpoints",
            )
        )
    return problems


def _age(variables: Mapping[str, Any], env: Optional[Mapping[str, str]], problems: List[Problem]) -> Tuple[str, List[str]]:
    key_file = os.path.expanduser(str(variables.get("homelab_ai_sops_age_key_file") or default_age_key_file(env)))
    recipients = list(variables.get("homelab_ai_sops_age_recipients") or [])
    if recipients:
        bad = check_recipients(recipients)
        if bad:
            problems.append(
                Problem("homelab_ai_sops_age_recipients", f"{bad} are not age public keys", "use the 'age1...' line that `age-keygen -y KEYFILE` prints")
            )
    if not os.path.isfile(key_file):
        problems.append(Problem("homelab_ai_sops_age_key_file", f"no age key at {key_file}", how_to_make_an_age_key(key_file)))
        return key_file, recipients
    if not recipients:
        try:
            recipients = age_recipients_from_key_file(key_file)
        except AgeKeyError as exc:
            problems.append(Problem("homelab_ai_sops_age_key_file", str(exc), "see the README section on SOPS"))
    return key_file, recipients
