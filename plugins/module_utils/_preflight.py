# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Everything the preflight checks before a role renders anything.

It sees the whole inventory at once and reports every problem in one message:
the shared variables and nodes (``_inventory``), misspelled variable names, the variables of every role
against that role's ``meta/argument_specs.yml``, sizes that are not Kubernetes quantities, and the age key.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from ._inventory import NODE_VARIABLES, SHARED_VARIABLES, build_inventory, check_variable_names
from ._problems import InputError, Problem
from ._quantity import QuantityError, parse_quantity
from ._sops import AgeKeyError, age_recipients_from_key_file, check_recipients, default_age_key_file, how_to_make_an_age_key

__all__ = ["QUANTITY_SUFFIXES", "component_problems", "load_role_specs", "quantity_problems", "run_preflight", "spec_problems"]

# Options named like this hold Kubernetes quantities; the argument specs cannot say so themselves.
QUANTITY_SUFFIXES = ("_size", "_memory", "_vram")
_RESOURCE_KEYS = ("cpu", "memory", "ephemeral-storage")


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
        problems.append(Problem(f"role {role}", str(error), f"see roles/{role}/meta/argument_specs.yml for the variable's type and choices"))
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
            _check_quantity(name, value, problems)
        elif name.endswith("_resources") and isinstance(value, Mapping):
            for section in ("requests", "limits"):
                for key, amount in ((value.get(section) or {}) if isinstance(value.get(section), Mapping) else {}).items():
                    if key in _RESOURCE_KEYS or "/" in str(key):
                        _check_quantity(f"{name}.{section}.{key}", amount, problems)
    return problems


def _check_quantity(where: str, value: Any, problems: List[Problem]) -> None:
    try:
        parse_quantity(value)
    except QuantityError as exc:
        problems.append(Problem(where, str(exc), "write a Kubernetes quantity such as 100Gi, 512Mi or 500m"))


def run_preflight(
    variables: Mapping[str, Any],
    hosts: Mapping[str, Mapping[str, Any]],
    role_specs: Mapping[str, Mapping[str, Any]],
    *,
    cwd: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
) -> Tuple[Dict[str, Any], List[str]]:
    """The normalised inventory as a dict and warnings, or ``InputError`` listing every problem.

    ``variables`` are the controller's variables, ``hosts`` the variables of each node host.
    A misspelled ``homelab_ai_*`` name is an error; a role-prefixed one (``ollama_...``) only a warning,
    since other roles of the user's may share such a prefix.
    """
    problems: List[Problem] = []
    shared = {name: variables[name] for name in SHARED_VARIABLES if name in variables}
    known = {"homelab_ai": sorted(SHARED_VARIABLES | NODE_VARIABLES)}
    problems.extend(check_variable_names(list(variables), known))
    warnings = [str(p) for p in check_variable_names(list(variables), {role: sorted(options) for role, options in role_specs.items()})]
    for host, hvars in hosts.items():
        problems.extend(
            Problem(f"{host}: {p.where}", p.message, p.fix)
            for p in check_variable_names([n for n in hvars if n.startswith("homelab_ai_")], {"homelab_ai": known["homelab_ai"]})
        )
    for role, options in role_specs.items():
        values = {name: variables[name] for name in options if name in variables}
        problems.extend(spec_problems(role, options, values))
        problems.extend(quantity_problems(values))

    inventory: Optional[Dict[str, Any]] = None
    try:
        inventory = build_inventory(shared, {host: {k: v for k, v in hvars.items() if k in NODE_VARIABLES} for host, hvars in hosts.items()}, cwd=cwd).to_dict()
    except InputError as exc:
        problems.extend(exc.problems)

    if inventory is not None:
        problems.extend(component_problems(variables, role_specs, inventory))
    key_file, recipients = _age(variables, env, problems)
    if problems:
        raise InputError(problems)
    assert inventory is not None
    warnings.extend(inventory.pop("warnings", []))  # declared and detected GPUs that differ harmlessly
    inventory["sops"] = {"age_key_file": key_file, "age_recipients": recipients}
    return inventory, warnings


def component_problems(variables: Mapping[str, Any], role_specs: Mapping[str, Mapping[str, Any]], inventory: Mapping[str, Any]) -> List[Problem]:
    """What no single variable shows: settings of the roles that do not fit the catalog or each other."""

    def value(role: str, name: str) -> Any:
        return variables[name] if name in variables else (role_specs.get(role, {}).get(name) or {}).get("default")

    problems: List[Problem] = []
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
