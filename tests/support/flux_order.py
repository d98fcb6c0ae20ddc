# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Flux's order, checked with real kustomize: can every custom resource of the tree be applied on a fresh cluster?

Flux's kustomize-controller applies CRDs and Namespaces first, then dry-runs every other object of a Kustomization
and applies none if one fails, so a custom resource must not share its Kustomization with the HelmRelease whose chart
installs its CRD. It must come from a Kustomization that depends on the chart's (``dependsOn``, directly or through
others), and that one must wait for its HelmReleases to be ready (``wait: true``): ``dependsOn`` only waits for the
dependency to be Ready, which without ``wait`` it is as soon as its objects are applied.

    python tests/support/flux_order.py TREE [--repo-root DIR]    (DIR: where the Kustomizations' spec.path start)

Which chart installs which CRD is in tests/fixtures/crds/providers.yaml, with the evidence in its README; Flux's own
CRDs come with Flux, and the built-in kinds are those kubernetes-validate has a schema for.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import kubernetes_validate
import yaml

from tests.support.tree_checks import CRD_DIR, K8S_VERSION, crds

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = os.environ.get("KUBECTL") or str(ROOT / ".cache" / "kube-tools" / "kubectl")
FLUX = "flux"


@dataclass
class Layer:
    name: str  # the Flux Kustomization's name
    spec: Dict[str, Any]
    objects: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def charts(self) -> Set[str]:
        return {o["spec"]["chart"]["spec"]["chart"] for o in self.objects if o["kind"] == "HelmRelease"}


def providers(crd_dir: Path = CRD_DIR) -> Dict[Tuple[str, str], str]:
    """``{(API group, kind): chart name, or "flux"}`` from providers.yaml and the CRD files it names."""
    table = yaml.safe_load((crd_dir / "providers.yaml").read_text())
    by_file = crds(crd_dir)
    found: Dict[Tuple[str, str], str] = {}
    for owner, files in [(FLUX, table["flux"]), *table["charts"].items()]:
        for name in files:
            for crd in by_file[name]:
                found[(crd["spec"]["group"], crd["spec"]["names"]["kind"])] = owner
    return found


def kustomize(directory: Path) -> List[Dict[str, Any]]:
    """``kubectl kustomize DIR``, the kustomize Flux runs (it fails on a missing file or a duplicate object)."""
    out = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory}: {out.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def layers(tree: Path, repo_root: Optional[Path] = None) -> List[Layer]:
    """The tree's Flux Kustomizations (``flux/``), each with the objects kustomize builds from its path."""
    repo_root = repo_root or tree.parent
    found = []
    for path in sorted((tree / FLUX).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Kustomization" and doc.get("apiVersion", "").startswith("kustomize.toolkit.fluxcd.io/"):
                layer = Layer(doc["metadata"]["name"], doc["spec"])
                layer.objects = kustomize(repo_root / doc["spec"]["path"])
                found.append(layer)
    return found


def _builtin(obj: Dict[str, Any]) -> bool:
    try:
        kubernetes_validate.validate({"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {"name": "x"}}, K8S_VERSION, strict=False)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        pass
    return True


def order_problems(found: List[Layer], crd_dir: Path = CRD_DIR) -> List[str]:
    """Every custom resource whose CRD would not exist when Flux applies it; empty when the order is right."""
    table = providers(crd_dir)
    by_name = {layer.name: layer for layer in found}
    problems: List[str] = []

    def ancestors(name: str, seen: Tuple[str, ...] = ()) -> Set[str]:
        if name in seen:
            problems.append(f"{name}: dependsOn forms a cycle ({' -> '.join([*seen, name])})")
            return set()
        result: Set[str] = set()
        for need in by_name[name].spec.get("dependsOn") or []:
            if need["name"] not in by_name:
                problems.append(f"{name}: dependsOn {need['name']}, which the tree does not render")
                continue
            result |= {need["name"]} | ancestors(need["name"], (*seen, name))
        return result

    for layer in found:
        # the charts whose CRDs exist before this layer is applied: those of waited-for layers it depends on
        ready = {chart for other in ancestors(layer.name) if by_name[other].spec.get("wait") for chart in by_name[other].charts}
        unwaited = {chart for other in ancestors(layer.name) if not by_name[other].spec.get("wait") for chart in by_name[other].charts}
        for obj in layer.objects:
            group = obj["apiVersion"].split("/", 1)[0] if "/" in obj["apiVersion"] else ""
            what = f"{layer.name}: {obj['kind']} {obj['metadata']['name']}"
            owner = table.get((group, obj["kind"]))
            if owner is None:
                if not _builtin(obj):
                    problems.append(f"{what}: no CRD is known for {obj['apiVersion']} (add it to tests/fixtures/crds and providers.yaml)")
                continue
            if owner == FLUX or owner in ready:
                continue
            if owner in layer.charts:
                problems.append(f"{what}: its CRD comes from chart {owner}, a HelmRelease of the same Kustomization (Flux's dry run refuses it)")
            elif owner in unwaited:
                problems.append(f"{what}: its CRD comes from chart {owner}, whose Kustomization does not wait (wait: true) for it")
            else:
                problems.append(f"{what}: its CRD comes from chart {owner}, which no Kustomization it depends on installs")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description="check Flux's order of a rendered homelab.ai tree")
    parser.add_argument("tree", type=Path)
    parser.add_argument("--repo-root", type=Path)
    args = parser.parse_args()
    problems = order_problems(layers(args.tree, args.repo_root))
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
