# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""How the components reach each other: each declares what it offers and what it consumes; this module does the rest.

Every component role declares itself in ``roles/<role>/meta/component.yml``::

    component: litellm              # its name in the tree, the wiring and the delivery order
    enabled: litellm_enabled        # the role variable that turns it on
    layer: apps                     # the tree's layer (_flux.LAYERS), apps when left out
    needs: [llamacpp, ollama]       # what the delivery puts before it
    offers:                         # its in-cluster Service: name, port (a number or a role variable), path
      service: litellm
      port: litellm_port
      path: /v1
      secret: litellm               # the Secret a client needs (the master key)
      model: stable_diffusion_model # what a client asks for, where the component serves one thing (image generation)
    exposes: {...}                  # what people on the LAN reach, and how (_exposure.py)
    consumes: [{name: llamacpp}, {name: ollama}]   # required: true when it cannot work without

The preflight reads every declaration with the inventory's values and puts the result into ``homelab_ai_inventory``
as ``wiring``: per component whether it is on, its Service and URL (``service_url`` builds every in-cluster URL), and
what it consumes. A role reads only that and its own variables, never another role's variables or output, so the
play order does not matter; the NetworkPolicies follow the same ``consumes``.

A component that offers one Service per catalog model (``per_model: <backend>``) names it with ``{slug}``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from ._exposure import resolve_exposure, urls
from ._problems import Problem

__all__ = ["DECLARATION", "build_wiring", "load_declarations", "service_url", "unreached_data"]

DECLARATION = os.path.join("meta", "component.yml")
_KEYS = ("component", "enabled", "layer", "needs", "offers", "exposes", "consumes")
_OFFER_KEYS = ("service", "port", "path", "per_model", "secret", "model")

Value = Callable[[str, str], Any]  # (role, variable) -> the inventory's value, else the role's default


def service_url(service: str, namespace: str, port: int, path: str = "") -> str:
    """The in-cluster URL of a Service: the one way every object of the tree names another component."""
    return f"http://{service}.{namespace}.svc.cluster.local:{int(port)}{path}"


def load_declarations(roles_dir: str) -> Dict[str, Dict[str, Any]]:
    """``{role: its meta/component.yml}`` for every role that describes a component."""
    found: Dict[str, Dict[str, Any]] = {}
    for role in sorted(os.listdir(roles_dir)):
        path = os.path.join(roles_dir, role, DECLARATION)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                found[role] = yaml.safe_load(handle) or {}
    return found


def _resolve(value: Value, role: str, setting: Any) -> Any:
    """A declared setting: a role variable's value when it names one of the role's variables, else itself."""
    if isinstance(setting, str) and setting.startswith(f"{role}_"):
        return value(role, setting)
    return setting


def build_wiring(
    declarations: Mapping[str, Mapping[str, Any]],
    value: Value,
    *,
    namespace: str,
    models: List[Mapping[str, Any]],
    secret_file: Callable[[str, str, str], str],
    network: Optional[Mapping[str, Any]] = None,
    node_address: str = "",
) -> Tuple[Dict[str, Dict[str, Any]], List[Problem]]:
    """``({component: wiring}, problems)``; ``secret_file(component, layer, secret)`` places a Secret's file;
    ``network`` (the inventory's: load balancer, ingress class) and ``node_address`` decide the exposures."""
    wiring: Dict[str, Dict[str, Any]] = {}
    problems: List[Problem] = []
    for role, declaration in sorted(declarations.items()):
        unknown = [key for key in declaration if key not in _KEYS] + [key for key in declaration.get("offers") or {} if key not in _OFFER_KEYS]
        if unknown or not declaration.get("component"):
            raise ValueError(f"roles/{role}/{DECLARATION}: needs component, knows {', '.join(_KEYS)} (offers: {', '.join(_OFFER_KEYS)}); got {unknown}")
        name = str(declaration["component"])
        layer = str(declaration.get("layer") or "apps")
        entry: Dict[str, Any] = {
            "role": role,
            "enabled": bool(_resolve(value, role, declaration.get("enabled", True))),
            "layer": layer,
            "needs": list(declaration.get("needs") or []),
            "consumes": [dict(item) if isinstance(item, Mapping) else {"name": str(item)} for item in declaration.get("consumes") or []],
            "service": _offer(role, name, layer, declaration.get("offers"), value, namespace, models, secret_file),
            "exposure": _exposure(role, name, declaration.get("exposes"), value, namespace, network or {}, node_address),
        }
        wiring[name] = entry
    for name, entry in sorted(wiring.items()):
        if not entry["enabled"]:
            continue
        for consumed in entry["consumes"]:
            other = wiring.get(consumed["name"])
            if other is None:
                raise ValueError(f"component {name} consumes {consumed['name']}, which no role declares")
            if consumed.get("required") and not other["enabled"]:
                problems.append(
                    Problem(
                        f"{entry['role']}_enabled",
                        f"{name} works only with {consumed['name']}, and {other['role']}_enabled is false",
                        f"set {other['role']}_enabled: true, or {entry['role']}_enabled: false",
                    )
                )
    return wiring, problems


def _offer(
    role: str,
    name: str,
    layer: str,
    offer: Optional[Mapping[str, Any]],
    value: Value,
    namespace: str,
    models: List[Mapping[str, Any]],
    secret_file: Callable[[str, str, str], str],
) -> Optional[Dict[str, Any]]:
    if not offer:
        return None
    port = int(_resolve(value, role, offer["port"]))
    path = str(offer.get("path") or "")
    service: Dict[str, Any] = {"port": port, "path": path}
    if offer.get("per_model"):
        template = str(offer["service"])
        served = [m for m in models if m["backend"] == offer["per_model"]]
        service["models"] = {
            m["name"]: {"service": template.format(slug=m["slug"]), "url": service_url(template.format(slug=m["slug"]), namespace, port, path)} for m in served
        }
    else:
        service["name"] = str(offer["service"])
        service["url"] = service_url(service["name"], namespace, port, path)
    if offer.get("model"):
        service["model"] = str(_resolve(value, role, offer["model"]))
    if offer.get("secret"):
        service["secret"] = str(offer["secret"])
        service["secret_file"] = secret_file(name, layer, str(offer["secret"]))
    return service


def _exposure(
    role: str, name: str, declared: Optional[Mapping[str, Any]], value: Value, namespace: str, network: Mapping[str, Any], node_address: str
) -> Optional[Dict[str, Any]]:
    if not declared:
        return None
    exposure = resolve_exposure(
        role,
        name,
        declared,
        lambda setting: _resolve(value, role, setting),
        load_balancer=str(network.get("load_balancer") or "servicelb"),
        ingress_class=str(network.get("ingress_class") or ""),
        node_address=node_address,
        cluster_url=service_url(str(declared["service"]), namespace, int(_resolve(value, role, declared["port"]))),
    )
    url, how = urls(exposure.to_dict(), str(declared.get("path") or "/"))
    return {**exposure.to_dict(), "url": url, "how": how, "title": str(declared.get("name") or name)}


def unreached_data(wiring: Mapping[str, Mapping[str, Any]], kept_data_of: Mapping[str, Sequence[str]]) -> List[str]:
    """What a component turned off leaves behind for those still on: its volumes stay (nothing holding data is
    deleted unless asked), but the components that consumed it no longer reach what they stored there."""
    notes = []
    for name, kept in sorted(kept_data_of.items()):
        entry = wiring.get(name)
        if entry is None or entry["enabled"]:
            continue
        consumers = sorted(c for c, e in wiring.items() if e["enabled"] and any(item["name"] == name for item in e["consumes"]))
        if consumers:
            one = len(consumers) == 1
            notes.append(
                f"{name} is off and its data stays in the cluster ({', '.join(kept)}), but {', '.join(consumers)} no longer"
                f" {'reaches' if one else 'reach'} it: what {'it' if one else 'they'} stored in {name} is not found"
                f" (Open WebUI's documents) until {entry['role']}_enabled is true again"
            )
    return notes
