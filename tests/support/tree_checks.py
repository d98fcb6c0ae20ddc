# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Checks of a rendered GitOps tree, shared by the pytest suite and the molecule scenario's verify step.

    python tests/support/tree_checks.py TREE [--age-key KEYFILE]

- every object validates against the upstream Kubernetes schemas (kubernetes-validate, strict, one pinned version)
  and every custom resource against its CRD's schema (tests/fixtures/crds);
- every kustomization lists exactly the files beside it, and every listed path exists;
- the workloads follow the collection's policy: pinned images, requests and limits, probes, no privilege escalation;
- the objects agree with each other: every LiteLLM route reaches, through its Service, the container port where its
  llama-server listens under the route's model name; probes name a container port; an ElastiService names the
  Service and Deployment of one model, and only a Deployment without a fixed replica count has one; every
  in-cluster URL that an object carries (Open WebUI's, LiteLLM's) reaches a Service port that a workload listens on;
- with an age key: every Secret decrypts, validates, and none of its values appears in plain text anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSION = "1.33.0"
# upstream CRDs, copied unchanged (tests/fixtures/crds/README.md); HOMELAB_AI_CRDS points elsewhere
CRD_DIR = Path(os.environ.get("HOMELAB_AI_CRDS") or Path(__file__).resolve().parents[1] / "fixtures" / "crds")
# the pinned charts' own values.yaml and Chart.yaml (tests/fixtures/charts/README.md)
CHARTS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "charts"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
# Device plugins talk to the kubelet over a socket; their images have no shell and no HTTP endpoint to probe.
NO_PROBES = {("DaemonSet", "amdgpu-device-plugin")} | {("DaemonSet", f"intel-gpu-plugin-shared-{n}") for n in range(1, 65)}
# Images that need root: upstream says so (Open WebUI, the ComfyUI image) or the kubelet's socket directory
# demands it (device plugins); llama.cpp and Ollama on AMD/Intel without the render group's GID.
ROOT_ALLOWED_IMAGES = (
    "open-webui/open-webui",
    "yanwk/comfyui-boot",
    "rocm/k8s-device-plugin",
    "intel/intel-gpu-plugin",
    "server-vulkan",
    "server-intel",
    "server-rocm",
    "ollama:",
)


def object_files(root: Path) -> List[Path]:
    skip = {"kustomization.yaml", ".sops.yaml"}
    return sorted(p for p in root.rglob("*.yaml") if p.name not in skip and not p.name.endswith(".sops.yaml") and ".git" not in p.parts)


def load_objects(root: Path) -> List[Tuple[str, Dict[str, Any]]]:
    found = []
    for path in object_files(root):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((str(path.relative_to(root)), doc))
    return found


def crds(crd_dir: Path = CRD_DIR) -> Dict[str, List[Dict[str, Any]]]:
    """The CRDs of each file of ``crd_dir`` (a file may hold several)."""
    found: Dict[str, List[Dict[str, Any]]] = {}
    for path in sorted(crd_dir.glob("*.yaml")) if crd_dir.is_dir() else []:
        docs = [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"]
        if docs:
            found[path.name] = docs
    return found


def _crd_schemas(crd_dir: Path) -> Dict[Tuple[str, str], Dict[str, Any]]:
    schemas: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for docs in crds(crd_dir).values():
        for crd in docs:
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def schema_problems(objects: Iterable[Tuple[str, Dict[str, Any]]], crd_dir: Path = CRD_DIR) -> Tuple[List[str], List[str]]:
    """(problems, kinds that had no schema to check against)."""
    problems: List[str] = []
    unchecked: List[str] = []
    crds = _crd_schemas(crd_dir)
    for where, obj in objects:
        key = (obj.get("apiVersion", ""), obj.get("kind", ""))
        if key in crds:
            errors = sorted(jsonschema.Draft7Validator(_openapi(crds[key])).iter_errors(obj), key=lambda e: list(e.path))
            problems.extend(f"{where}: {'.'.join(map(str, e.path))}: {e.message}" for e in errors)
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unchecked.append(f"{key[0]} {key[1]}")
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")
    return problems, sorted(set(unchecked))


def _openapi(schema: Any) -> Any:
    """CRD schemas are OpenAPI v3: make 'x-kubernetes-*' and 'nullable' mean to JSON Schema what they mean to the API server."""
    if isinstance(schema, dict):
        out = {k: _openapi(v) for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
        if schema.get("x-kubernetes-int-or-string"):
            out["type"] = ["integer", "string"]
        if schema.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            out.pop("additionalProperties", None)
        return out
    if isinstance(schema, list):
        return [_openapi(v) for v in schema]
    return schema


def kustomization_problems(root: Path) -> List[str]:
    problems = []
    for kustomization in sorted(root.rglob("kustomization.yaml")):
        directory = kustomization.parent
        listed = yaml.safe_load(kustomization.read_text()).get("resources") or []
        for entry in listed:
            if not (directory / entry).exists():
                problems.append(f"{kustomization.relative_to(root)}: lists {entry}, which does not exist")
        present = {p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml" and not p.name.startswith(".")}
        present |= {p.name for p in directory.iterdir() if p.is_dir() and (p / "kustomization.yaml").exists()}
        for name in sorted(present - set(listed)):
            problems.append(f"{kustomization.relative_to(root)}: does not list {name}")
    return problems


def values_problems(objects: Iterable[Tuple[str, Dict[str, Any]]], charts_dir: Path = CHARTS_DIR) -> Tuple[List[str], List[str]]:
    """(values keys a chart does not know, charts whose values.yaml is not here). Helm says nothing of unknown keys.

    A key is known where the chart's values.yaml has it, below a key whose default is an empty map or null (free-form:
    nodeSelector, resources, ...), or as a subchart's ``condition`` in Chart.yaml (``nfd.enabled``).
    """
    problems: List[str] = []
    unchecked: List[str] = []
    for where, obj in objects:
        if obj.get("kind") != "HelmRelease":
            continue
        spec = obj["spec"]["chart"]["spec"]
        folder = charts_dir / f"{spec['chart']}-{spec['version']}"
        if not (folder / "values.yaml").exists():
            unchecked.append(f"{spec['chart']} {spec['version']}")
            continue
        defaults = yaml.safe_load((folder / "values.yaml").read_text()) or {}
        chart = yaml.safe_load((folder / "Chart.yaml").read_text()) or {}
        conditions = {path for dep in chart.get("dependencies") or [] for path in str(dep.get("condition") or "").split(",") if path}
        problems.extend(
            f"{where}: values.{path}: {spec['chart']} {spec['version']} has no such key"
            for path in _unknown_keys(obj["spec"].get("values") or {}, defaults, "", conditions)
        )
    return problems, sorted(set(unchecked))


def _unknown_keys(values: Any, defaults: Any, prefix: str, conditions: set) -> List[str]:
    if not isinstance(values, dict):
        return []
    if defaults is None or defaults == {}:
        return []  # a free-form map: any key goes
    unknown = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if path in conditions:
            continue
        if not isinstance(defaults, dict) or key not in defaults:
            unknown.append(path)
            continue
        unknown.extend(_unknown_keys(value, defaults[key], path + ".", conditions))
    return unknown


def policy_problems(objects: Iterable[Tuple[str, Dict[str, Any]]]) -> List[str]:
    problems = []
    for where, obj in objects:
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        pod = obj["spec"]["template"]["spec"]
        pod_ctx = pod.get("securityContext") or {}
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            name = f"{where}: {container['name']}"
            image = container["image"]
            tag = image.rsplit("/", 1)[-1]
            if "@sha256:" not in image and (":" not in tag or tag.endswith(":latest")):
                problems.append(f"{name}: image {image} is not pinned to a version")
            resources = container.get("resources") or {}
            if not resources.get("requests") or not resources.get("limits"):
                problems.append(f"{name}: needs resource requests and limits")
            # init containers run to completion: the API refuses probes on them
            init = container in pod.get("initContainers", [])
            if (obj["kind"], obj["metadata"]["name"]) not in NO_PROBES and obj["kind"] != "Job" and not init:
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in container:
                        problems.append(f"{name}: has no {probe}")
            ctx = container.get("securityContext") or {}
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: must set allowPrivilegeEscalation: false")
            non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
            if not non_root and not any(allowed in image for allowed in ROOT_ALLOWED_IMAGES):
                problems.append(f"{name}: runs as root, but {image} supports a non-root user")
    return problems


def selected_workloads(objects: Iterable[Dict[str, Any]], service: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The Deployments and StatefulSets whose pods a Service selects."""
    selector = service["spec"].get("selector") or {}
    namespace = service["metadata"].get("namespace", "")
    return [
        o
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
        and o["metadata"].get("namespace", "") == namespace
        and selector
        and all(o["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
    ]


def container_port(pod_spec: Dict[str, Any], target: Any) -> Optional[Tuple[Dict[str, Any], int]]:
    """(container, port) that a Service targetPort or probe port (a number or a port name) reaches."""
    for container in pod_spec.get("containers", []):
        for port in container.get("ports", []):
            if target in (port.get("name"), port["containerPort"]):
                return container, int(port["containerPort"])
    return None


_CLUSTER_URL = re.compile(r"(?P<scheme>https?)://(?P<service>[a-z0-9-]+)\.(?P<namespace>[a-z0-9-]+)\.svc(?:\.cluster\.local)?(?::(?P<port>\d+))?")


def _address(match: re.Match) -> Tuple[str, str, int]:
    return match["service"], match["namespace"], int(match["port"] or (443 if match["scheme"] == "https" else 80))


def cluster_address(url: str) -> Optional[Tuple[str, str, int]]:
    """(Service, namespace, port) of an in-cluster URL (``http://<service>.<namespace>.svc...``), else None."""
    match = _CLUSTER_URL.match(url)
    return _address(match) if match else None


Backend = Tuple[Dict[str, Any], Dict[str, Any], int]  # workload, container, container port


def service_backend(objects: Iterable[Dict[str, Any]], service: str, namespace: str, port: int) -> Tuple[Optional[Backend], str]:
    """Follow ``service:port`` as kube-proxy would: ((workload, container, container port), "") or (None, why it leads nowhere)."""
    objects = list(objects)
    svc = next((o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == service and o["metadata"].get("namespace", "") == namespace), None)
    if not svc:
        return None, f"Service {namespace}/{service} is not rendered"
    ports = [p for p in svc["spec"]["ports"] if int(p["port"]) == port]
    if not ports:
        return None, f"Service {service} has no port {port} ({[p['port'] for p in svc['spec']['ports']]})"
    workloads = selected_workloads(objects, svc)
    if len(workloads) != 1:
        return None, f"Service {service} selects {len(workloads)} workloads, not one"
    target = ports[0].get("targetPort", port)
    found = container_port(workloads[0]["spec"]["template"]["spec"], target)
    if not found:
        return None, f"no workload behind Service {service} listens on its target port {target!r}"
    return (workloads[0], found[0], found[1]), ""


def strings_in(value: Any) -> Iterable[str]:
    """Every string in a parsed YAML value, however deep."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def _flag(args: List[str], flag: str) -> Optional[str]:
    return args[args.index(flag) + 1] if flag in args[:-1] else None


def wiring_problems(objects: Iterable[Dict[str, Any]]) -> List[str]:
    """Names and ports that must agree between objects (a mismatch renders and validates, then fails in the cluster)."""
    objects = list(objects)
    problems: List[str] = []
    services = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects if o["kind"] == "Service"}
    deployments = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects if o["kind"] == "Deployment"}

    for obj in objects:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in pod.get("containers", []):
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                port = ((container.get(probe) or {}).get("httpGet") or {}).get("port")
                if port is not None and container_port({"containers": [container]}, port) is None:
                    problems.append(f"{obj['kind']} {obj['metadata']['name']}: {probe} port {port!r} is no port of container {container['name']}")

    # a namespace a chart is installed into holds what the chart makes (Prometheus' Services): the chart's business
    chart_namespaces = {o["metadata"].get("namespace", "") for o in objects if o["kind"] == "HelmRelease"}
    rendered_namespaces = {o["metadata"].get("namespace", "") for o in objects} - chart_namespaces
    routed = set()
    for configmap in (o for o in objects if o["kind"] == "ConfigMap" and "config.yaml" in (o.get("data") or {})):
        config = yaml.safe_load(configmap["data"]["config.yaml"]) or {}
        for entry in config.get("model_list") or []:
            name, params = entry["model_name"], entry["litellm_params"]
            where = f"LiteLLM route {name}"
            routed.add(name)
            address = cluster_address(params.get("api_base", ""))
            if not address:
                problems.append(f"{where}: api_base {params.get('api_base')!r} is not a cluster Service address")
                continue
            found, problem = service_backend(objects, *address)
            if not found:
                # the address check below reports it, as for every in-cluster URL into the tree's namespaces
                if address[1] not in rendered_namespaces:
                    problems.append(f"{where}: {problem}")
                continue
            _, container, port = found
            if "llama.cpp" not in container.get("image", ""):
                continue
            args = [str(a) for a in container.get("args", [])]
            if _flag(args, "--port") != str(port):
                problems.append(f"{where}: llama-server listens on {_flag(args, '--port')}, its container port is {port}")
            model = params.get("model", "").split("/", 1)[-1]
            if _flag(args, "--alias") != model:
                problems.append(f"{where}: llama-server answers to {_flag(args, '--alias')!r}, LiteLLM asks for {model!r}")

    # every in-cluster address that any object carries (env values, config files) reaches a port that something
    # listens on; namespaces the tree does not render into (monitoring's Prometheus) are the cluster's business
    for obj in objects:
        for text in strings_in(obj):
            for match in _CLUSTER_URL.finditer(text):
                address = _address(match)
                if address[1] not in rendered_namespaces:
                    continue
                _, problem = service_backend(objects, *address)
                if problem:
                    problems.append(f"{obj['kind']} {obj['metadata']['name']}: {match.group(0)}: {problem}")

    for (_namespace, name), deployment in deployments.items():
        model = (deployment["metadata"].get("annotations") or {}).get("homelab.ai/model")
        if model and routed and model not in routed:
            problems.append(f"Deployment {name}: model {model!r} has no LiteLLM route")
    scaled = set()
    for elasti in (o for o in objects if o["kind"] == "ElastiService"):
        namespace, spec = elasti["metadata"].get("namespace", ""), elasti["spec"]
        where = f"ElastiService {elasti['metadata']['name']}"
        service, target = services.get((namespace, spec.get("service"))), spec.get("scaleTargetRef") or {}
        deployment = deployments.get((namespace, target.get("name"))) if target.get("kind") == "Deployment" else None
        if not service:
            problems.append(f"{where}: service {spec.get('service')!r} is not rendered")
        if not deployment:
            problems.append(f"{where}: scaleTargetRef {target.get('kind')} {target.get('name')!r} is not rendered")
        if service and deployment and deployment not in selected_workloads(objects, service):
            problems.append(f"{where}: Service {service['metadata']['name']} does not select Deployment {deployment['metadata']['name']}")
        if deployment:
            scaled.add((namespace, deployment["metadata"]["name"]))
            if "replicas" in deployment["spec"]:
                problems.append(f"{where}: Deployment {deployment['metadata']['name']} fixes replicas, which fights the scaler")
    for key, deployment in deployments.items():
        if (deployment["metadata"].get("annotations") or {}).get("homelab.ai/model") and "replicas" not in deployment["spec"] and key not in scaled:
            problems.append(f"Deployment {key[1]}: no replica count and no ElastiService to scale it")
    return problems


def decrypt(path: Union[str, Path], age_key: Union[str, Path], sops: Optional[str] = None) -> Dict[str, Any]:
    """A SOPS file decrypted by the sops binary (the venv's unless named) with the age key file ``age_key``."""
    out = subprocess.run(
        [sops or os.path.join(os.path.dirname(sys.executable), "sops"), "decrypt", "--output-type", "json", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "SOPS_AGE_KEY_FILE": str(age_key)},
        check=True,
    )
    return json.loads(out.stdout)


def decrypt_secrets(root: Path, age_key: str, sops: Optional[str] = None) -> List[Tuple[str, Dict[str, Any]]]:
    return [(str(path.relative_to(root)), decrypt(path, age_key, sops)) for path in sorted(p for p in root.rglob("*.sops.yaml") if p.name != ".sops.yaml")]


def plaintext_leaks(root: Path, secrets: Iterable[Tuple[str, Dict[str, Any]]], extra_text: str = "") -> List[str]:
    """Secret values found in plain text in any file of the tree (or in extra_text, e.g. a run's output)."""
    values = {value for _, secret in secrets for value in (secret.get("stringData") or {}).values() if len(str(value)) >= 8}
    leaks = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        text = path.read_text(errors="replace")
        leaks.extend(f"{path.relative_to(root)} holds a secret value in plain text" for value in values if value in text)
    leaks.extend("the run's output holds a secret value" for value in values if value in extra_text)
    return leaks


def check_tree(root: Path, age_key: Optional[str] = None) -> List[str]:
    objects = load_objects(root)
    problems, _unchecked = schema_problems(objects)
    problems += kustomization_problems(root)
    problems += policy_problems(objects)
    problems += values_problems(objects)[0]
    problems += wiring_problems(obj for _, obj in objects)
    if age_key:
        secrets = decrypt_secrets(root, age_key)
        problems += schema_problems(secrets)[0]
        problems += plaintext_leaks(root, secrets)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description="check a rendered homelab.ai GitOps tree")
    parser.add_argument("tree", type=Path)
    parser.add_argument("--age-key")
    args = parser.parse_args()
    if not (args.tree / "flux").is_dir():
        print(f"{args.tree}: no flux/ directory, not a rendered tree", file=sys.stderr)
        return 2
    problems = check_tree(args.tree, args.age_key)
    for problem in problems:
        print(problem)
    objects = len(load_objects(args.tree))
    print(f"{args.tree}: {objects} objects, {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
