# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""What a component places on GPUs (``gpu_workloads``), as the VRAM plan reads it: the format, checked when a role
registers its component (``_components``) and sized by the plan (``_vram_plan``). Kept apart from both, so that a role
describing its component loads neither the estimate nor what fetches GGUF headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from ._problems import Problem
from ._quantity import QuantityError, to_bytes

__all__ = ["WORKLOAD_KINDS", "GpuWorkload", "normalize_workloads"]

WORKLOAD_KINDS = ("llamacpp", "ollama", "stable-diffusion", "other")


@dataclass
class GpuWorkload:
    """A workload that holds GPU memory, as a component role registers it under ``gpu_workloads``.

    ``name`` (unique per component), ``kind`` (``llamacpp``, ``ollama``, ``stable-diffusion`` or ``other``), ``node``
    (Kubernetes node name) and ``gpu`` (the GPU id ``<node>/gpu<index>`` that ``homelab.ai.node_gpu`` returns) place it;
    its size is ``vram`` (bytes or a quantity; it overrides any estimate), else estimated from ``model`` (a catalog
    model name, llama.cpp) or ``models`` (the catalog models an Ollama server may load, ``max_loaded`` of them at once).
    """

    name: str
    component: str
    kind: str
    node: str
    gpu: str
    vram: Optional[int] = None
    model: Optional[str] = None
    models: List[str] = field(default_factory=list)
    max_loaded: int = 1
    flash_attention: bool = True  # Ollama's OLLAMA_FLASH_ATTENTION
    scale_to_zero: bool = False  # holds its GPU slot only while in use (KubeElasti)


def normalize_workloads(components: Sequence[Mapping[str, Any]]) -> Tuple[List[GpuWorkload], List[Problem]]:
    """The ``gpu_workloads`` of every component, checked; a problem names the component and the entry."""
    workloads: List[GpuWorkload] = []
    problems: List[Problem] = []
    for component in components:
        for index, raw in enumerate(component.get("gpu_workloads") or []):
            where = f"component {component['name']}.gpu_workloads[{index}]"
            if not isinstance(raw, Mapping):
                problems.append(Problem(where, f"{raw!r} is not a mapping", "register name, kind, node, gpu and vram or model"))
                continue
            unknown = sorted(set(raw) - {f.name for f in GpuWorkload.__dataclass_fields__.values()} - {"component"})
            if unknown:
                problems.append(
                    Problem(where, f"has unknown keys {unknown}", "use name, kind, node, gpu, vram, model, models, max_loaded, flash_attention, scale_to_zero")
                )
            missing = [key for key in ("name", "kind", "node", "gpu") if not raw.get(key)]
            if missing:
                problems.append(
                    Problem(where, f"is missing {', '.join(missing)}", "a GPU workload is placed on a node's GPU: take node and gpu from homelab.ai.node_gpu")
                )
                continue
            kind = str(raw["kind"])
            if kind not in WORKLOAD_KINDS:
                problems.append(Problem(f"{where}.kind", f"{kind!r} is not a workload kind", f"use one of {', '.join(WORKLOAD_KINDS)}"))
                continue
            vram: Optional[int] = None
            if raw.get("vram") not in (None, ""):
                try:
                    vram = to_bytes(raw["vram"])
                except QuantityError as exc:
                    problems.append(Problem(f"{where}.vram", str(exc), "write a quantity such as 12Gi"))
                    continue
            models = raw.get("models") or []
            if not isinstance(models, list):
                problems.append(Problem(f"{where}.models", f"{models!r} is not a list of model names", "list catalog model names"))
                continue
            workloads.append(
                GpuWorkload(
                    name=str(raw["name"]),
                    component=str(component["name"]),
                    kind=kind,
                    node=str(raw["node"]),
                    gpu=str(raw["gpu"]),
                    vram=vram,
                    model=str(raw["model"]) if raw.get("model") else None,
                    models=[str(m) for m in models],
                    max_loaded=int(raw.get("max_loaded") or 1),
                    flash_attention=bool(raw.get("flash_attention", True)),
                    scale_to_zero=bool(raw.get("scale_to_zero", False)),
                )
            )
    return workloads, problems
