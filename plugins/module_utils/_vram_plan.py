# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The VRAM plan: for every GPU, what the workloads placed on it may use at once, and whether it fits.

Time-slicing shares a GPU's compute, never its memory: two workloads that together need more than the GPU holds
fail at load time, or later under load. The plan finds that before anything is deployed.

Workloads are what the component roles register as ``gpu_workloads`` (``_workloads.GpuWorkload``). Their sizes:

- llama.cpp models: estimated from the GGUF header (``_vram_estimate``), fetched with HTTP range requests
  before any download and cached on the controller; else the catalog's ``vram``, else its ``size`` plus an
  allowance, with a note saying so. A catalog ``vram`` always wins over an estimate.
- Ollama: the declared budget (``ollama_vram``), else the largest of its models (each estimated as above, or from
  the parameter count in its tag), times the models it keeps loaded at once; nothing when the catalog gives it no
  model.
- Stable Diffusion and anything else: the declared budget.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ._gguf import GgufInfo, HeaderUnavailable
from ._problems import Problem
from ._quantity import format_bytes
from ._vram_estimate import RUNTIME_OVERHEAD, LlamaSettings, estimate_llamacpp, settings_for_model
from ._workloads import GpuWorkload, normalize_workloads

__all__ = [
    "PlanEntry",
    "PlanRow",
    "VramPlan",
    "make_vram_plan",
]

MIB = 2**20
# Without a header: the file plus this share of it and a fixed amount (KV cache and compute of a typical context).
_FALLBACK_SHARE = 0.10
_FALLBACK_FIXED = 512 * MIB
_QWEN3_VOCAB = 151936  # the padded vocabulary of Qwen3's GGUFs: what the note on an embedding model's output names
# An Ollama model known only by the parameter count in its tag (llama3.2:3b): Ollama's default Q4_K_M is ~4.85 bits per weight.
_OLLAMA_BYTES_PER_PARAM = 0.61
_OLLAMA_CONTEXT = 4096  # what Ollama loads a model with unless told otherwise
MAX_LAYERS = 999  # gpu_layers' "all"


HeaderFn = Callable[[str], Tuple[GgufInfo, str]]  # source URI -> (header, "cache" | "fetched"); HeaderUnavailable


@dataclass
class PlanEntry:
    workload: str
    component: str
    kind: str
    bytes: int
    basis: str  # how the size was found
    detail: Dict[str, int] = field(default_factory=dict)  # weights, kv_cache, compute where estimated
    notes: List[str] = field(default_factory=list)
    scale_to_zero: bool = False
    at_once: bool = True  # False: it takes turns with others for the GPU's slots, so it is not counted with them
    sized_by: str = ""  # header | catalog-size | tag | budget: which fixes change the estimate


@dataclass
class PlanRow:
    gpu: str
    node: str
    vendor: str
    model: str
    memory: int  # per device
    count: int
    replicas: int
    apu: bool
    entries: List[PlanEntry] = field(default_factory=list)

    @property
    def capacity(self) -> int:
        return self.memory * self.count

    @property
    def slots(self) -> int:
        """Pods that can hold the GPU at once: one per device, or per time-slice."""
        return self.count * max(1, self.replicas)

    @property
    def used(self) -> int:
        """What the workloads that can run at once use (those that take turns for a slot count once, the largest)."""
        return sum(entry.bytes for entry in self.entries if entry.at_once)

    @property
    def overcommitted(self) -> bool:
        return self.used > self.capacity or any(entry.bytes > self.memory for entry in self.entries)


@dataclass
class VramPlan:
    rows: List[PlanRow]
    problems: List[Problem]  # over-commitments (and sizes that cannot be found): the run fails on them
    warnings: List[str]
    notes: List[str]
    overcommit_allowed: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> Dict[str, Any]:
        return {
            "ok": self.ok,
            "overcommit_allowed": self.overcommit_allowed,
            "gpus": [
                {**asdict(row), "capacity": row.capacity, "used": row.used, "free": row.capacity - row.used, "overcommitted": row.overcommitted}
                for row in self.rows
            ],
            "problems": [str(p) for p in self.problems],
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }

    def table(self) -> str:
        """Plain text for the end of the run."""
        lines = []
        for row in self.rows:
            share = f"{row.count}x " if row.count > 1 else ""
            sharing = "exclusive" if row.replicas <= 1 else f"time-sliced x{row.replicas}"
            status = "OVER-COMMITTED" if row.overcommitted else "ok"
            lines.append(
                f"{row.gpu}  {share}{row.model} ({row.vendor}{', APU' if row.apu else ''}, {sharing}): "
                f"{format_bytes(row.used)} of {format_bytes(row.capacity)} ({_percent(row.used, row.capacity)}) {status}"
            )
            for entry in row.entries:
                turns = "" if entry.at_once else " (takes turns for a slot: not counted)"
                lines.append(f"    {entry.workload:<28} {format_bytes(entry.bytes):>10}  {entry.basis}{turns}")
            if not row.entries:
                lines.append("    (nothing placed on it)")
        return "\n".join(lines)

    def markdown(self, cluster: str = "") -> str:
        """``vram-plan.md`` of the GitOps tree."""
        out = [f"# VRAM plan{' of ' + cluster if cluster else ''}", ""]
        out.append(
            "What the workloads placed on each GPU may use at once. Time-slicing shares a GPU's compute, never its memory, "
            "so these must fit together. Made by homelab.ai from the inventory and the models' GGUF headers."
        )
        out += ["", "| GPU | node | memory | sharing | used | free | status |", "|---|---|---|---|---|---|---|"]
        for row in self.rows:
            sharing = "exclusive" if row.replicas <= 1 else f"time-sliced x{row.replicas}"
            out.append(
                f"| {row.gpu} ({row.model}{', APU' if row.apu else ''}) | {row.node} | {_count(row)}{format_bytes(row.memory)} | {sharing} | "
                f"{format_bytes(row.used)} ({_percent(row.used, row.capacity)}) | {format_bytes(row.capacity - row.used)} | "
                f"{'**over-committed**' if row.overcommitted else 'ok'} |"
            )
        out += [
            "",
            "| GPU | workload | component | VRAM | weights | KV cache | compute | runtime | how it was sized |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in self.rows:
            for entry in row.entries:
                detail = [format_bytes(entry.detail[key]) if key in entry.detail else "" for key in ("weights", "kv_cache", "compute", "runtime")]
                basis = "; ".join([entry.basis, *entry.notes, *([] if entry.at_once else ["takes turns for a slot: not counted"])])
                out.append(f"| {row.gpu} | {entry.workload} | {entry.component} | {format_bytes(entry.bytes)} | {' | '.join(detail)} | {basis} |")
        for title, items in (("Problems", [str(p) for p in self.problems]), ("Warnings", self.warnings), ("Notes", self.notes)):
            if items:
                out += ["", f"## {title}", ""] + [f"- {item}" for item in items]
        return "\n".join(out) + "\n"


def _percent(used: int, capacity: int) -> str:
    return f"{100 * used / capacity:.0f} %" if capacity else "-"


def _count(row: PlanRow) -> str:
    return f"{row.count}x " if row.count > 1 else ""


def make_vram_plan(
    inventory: Mapping[str, Any],
    components: Sequence[Mapping[str, Any]],
    *,
    header: Optional[HeaderFn] = None,
    overcommit: Optional[bool] = None,
) -> VramPlan:
    """The plan for the normalised inventory and the registered components.

    ``header`` fetches a model's GGUF header (None: plan without headers, from the catalog only). ``overcommit``
    defaults to the inventory's ``vram_overcommit``; when true, over-commitments are warnings instead of problems.
    """
    allowed = bool(inventory.get("vram_overcommit") if overcommit is None else overcommit)
    workloads, problems = normalize_workloads(components)
    warnings: List[str] = []
    notes: List[str] = []
    models = {m["name"]: (index, m) for index, m in enumerate(inventory.get("models") or [])}
    rows: Dict[str, PlanRow] = {}
    for node in inventory["nodes"]:
        for gpu in node["gpus"]:
            rows[gpu["id"]] = PlanRow(
                gpu=gpu["id"],
                node=node["name"],
                vendor=gpu["vendor"],
                model=gpu["model"],
                memory=int(gpu["memory"]),
                count=int(gpu["count"]),
                replicas=int(gpu["replicas"]),
                apu=bool(gpu.get("apu")),
            )
    sizer = _Sizer(models, header, problems, notes)
    for index, model in models.values():
        sizer.check_pooling(index, model)
    for workload in workloads:
        row = rows.get(workload.gpu)
        if row is None:
            problems.append(
                Problem(
                    f"component {workload.component}.gpu_workloads ({workload.name})",
                    f"names GPU {workload.gpu!r}, which the inventory does not have",
                    "fix the role",
                )
            )
            continue
        entry = sizer.size(workload, row.vendor)
        if entry is not None:
            entry.scale_to_zero = workload.scale_to_zero
            row.entries.append(entry)

    for row in rows.values():
        problems.extend(_slot_problems(row, warnings))

    for row in rows.values():
        over: List[str] = []
        for entry in row.entries:
            if entry.bytes > row.memory:
                over.append(f"{entry.workload} alone needs {format_bytes(entry.bytes)}, more than the {format_bytes(row.memory)} of one GPU")
        if row.used > row.capacity:
            parts = " + ".join(f"{e.workload} {format_bytes(e.bytes)}" for e in row.entries)
            over.append(f"{parts} = {format_bytes(row.used)}, {format_bytes(row.used - row.capacity)} more than its {format_bytes(row.capacity)}")
        for text in over:
            where = f"VRAM of {row.gpu} ({row.model} on {row.node})"
            fix = _overcommit_fix(row.entries)
            if allowed:
                warnings.append(f"{where}: {text} (allowed by homelab_ai_vram_overcommit)")
            else:
                problems.append(Problem(where, text, fix))
    return VramPlan(rows=list(rows.values()), problems=problems, warnings=warnings, notes=notes, overcommit_allowed=allowed)


def _overcommit_fix(entries: Sequence[PlanEntry]) -> str:
    """What would make the plan fit: only the changes that move the estimate of how these entries were sized."""
    sized = {entry.sized_by for entry in entries}
    fixes = ["move a workload to another GPU (catalog node, ollama_node, stable_diffusion_node)"]
    if sized & {"header", "ollama"}:
        fixes.append("shrink a model (a smaller quantization, a shorter context, --cache-type-k/v q8_0 in args, fewer gpu_layers)")
    if "catalog-size" in sized or "tag" in sized:
        fixes.append(
            "for a model sized without its GGUF header, a smaller file (size:), or fewer gpu_layers with the model's layers: in the catalog, "
            "or let the run read the headers (deliver_vram_fetch: true where the models' hosts can be reached)"
        )
    fixes.append("set a smaller budget (vram, ollama_vram, stable_diffusion_vram) if it really needs less")
    fixes.append("or set homelab_ai_vram_overcommit: true if they never run at full load together")
    return ", ".join(fixes)


def _slot_problems(row: PlanRow, warnings: List[str]) -> List[Problem]:
    """A GPU's slots: workloads that always run must each have one; those that scale to zero take turns for the rest.

    Marks the ones that take turns (all but the largest that fit the free slots) as not counted at once.
    """
    sharing = "exclusive" if row.replicas <= 1 else f"{row.replicas} time-slices"
    always = [entry for entry in row.entries if not entry.scale_to_zero]
    turns = sorted((entry for entry in row.entries if entry.scale_to_zero), key=lambda entry: -entry.bytes)
    free = max(0, row.slots - len(always))
    for entry in turns[free:]:
        entry.at_once = False
    if len(always) > row.slots:
        return [
            Problem(
                f"GPU slots of {row.gpu} ({row.model} on {row.node})",
                f"{len(always)} workloads always run there ({', '.join(e.workload for e in always)}), but it has {row.slots} slot(s) ({sharing}): "
                f"{len(always) - row.slots} would stay Pending for good",
                "let a model scale to zero (scale_to_zero: true in the catalog), share the GPU (homelab_ai_gpu_sharing with replicas), "
                "or move a workload to another node (catalog node, ollama_node, stable_diffusion_node)",
            )
        ]
    waiting = [entry.workload for entry in turns[free:]]
    if waiting:
        warnings.append(
            f"{row.gpu}: {len(row.entries)} workloads for {row.slots} slot(s) ({sharing}): {', '.join(waiting)} start only when a slot is free "
            "(the models that scale to zero take turns), so the plan counts the largest of them that fit at once"
        )
    return []


class _Sizer:
    """Sizes workloads, remembering each model's estimate (one header fetch per source)."""

    def __init__(self, models: Mapping[str, Tuple[int, Mapping[str, Any]]], header: Optional[HeaderFn], problems: List[Problem], notes: List[str]):
        self.models = models
        self.header = header
        self.problems = problems
        self.notes = notes
        self.unavailable: Dict[str, str] = {}

    def size(self, workload: GpuWorkload, vendor: str) -> Optional[PlanEntry]:
        entry = PlanEntry(workload=workload.name, component=workload.component, kind=workload.kind, bytes=0, basis="")
        if workload.vram is not None:
            entry.bytes, entry.basis, entry.sized_by = workload.vram, "declared budget", "budget"
            return entry
        sized: Optional[PlanEntry] = None
        if workload.kind == "llamacpp" and workload.model:
            sized = self._llamacpp(workload, entry)
        elif workload.kind == "ollama" and workload.models:
            sized = self._ollama(workload, entry)
        elif workload.kind == "ollama":
            # Ollama holds GPU memory only for a loaded model, and LiteLLM routes only catalog models to it
            entry.basis = "no catalog models: loads none"
            return entry
        else:
            sized = None
            self._no_budget(workload)
        if sized is not None and sized.sized_by != "budget":
            # once per server process, whatever it loads
            sized.detail["runtime"] = RUNTIME_OVERHEAD.get(vendor, 0)
            sized.bytes += sized.detail["runtime"]
        return sized

    def _header(self, source: str) -> Tuple[Optional[GgufInfo], str]:
        """A model's GGUF header, once per source, or why there is none."""
        if self.header is None or not source:
            return None, "no header lookup (offline plan)"
        if source in self.unavailable:
            return None, self.unavailable[source]
        try:
            info, _origin = self.header(source)
        except HeaderUnavailable as exc:
            self.unavailable[source] = str(exc)
            return None, str(exc)
        return info, ""

    def check_pooling(self, index: int, model: Mapping[str, Any]) -> None:
        """An embedding model needs a pooling llama-server can answer OpenAI's embeddings with: the catalog's, else the
        one its GGUF declares (none, or no header to tell, is a problem)."""
        if model.get("mode") != "embedding" or model.get("backend") != "llamacpp" or model.get("pooling"):
            return
        info, reason = self._header(str(model.get("source") or ""))
        declared = info.get("pooling_type") if info is not None else None
        if declared in (1, 2, 3):  # mean, cls, last
            return
        if info is None:
            found = f"its GGUF header cannot be read ({reason}), so the pooling it declares is unknown"
        elif declared is None:
            found = "its GGUF declares no pooling type"
        else:
            found = f"its GGUF declares pooling type {declared}, which answers no OpenAI embeddings request"
        self.problems.append(
            Problem(
                f"homelab_ai_models[{index}] ({model['name']}).pooling",
                f"is not set and {found}",
                "set pooling: as the model card says (last for Qwen3-Embedding, mean for nomic-embed and bge-m3, cls for bge-large)",
            )
        )

    def _no_budget(self, workload: GpuWorkload) -> None:
        self.problems.append(
            Problem(
                f"component {workload.component}.gpu_workloads ({workload.name})",
                "has no VRAM budget and nothing to estimate it from",
                "set the component's VRAM budget (e.g. ollama_vram: 16Gi, stable_diffusion_vram: 12Gi)",
            )
        )

    def _model(self, workload: GpuWorkload, name: str) -> Optional[Tuple[int, Mapping[str, Any]]]:
        found = self.models.get(name)
        if found is None:
            self.problems.append(
                Problem(f"component {workload.component}.gpu_workloads ({workload.name})", f"names model {name!r}, which is not in the catalog", "fix the role")
            )
        return found

    def _llamacpp(self, workload: GpuWorkload, entry: PlanEntry) -> Optional[PlanEntry]:
        assert workload.model is not None
        found = self._model(workload, workload.model)
        if found is None:
            return None
        index, model = found
        try:
            settings = settings_for_model(model)
        except ValueError as exc:
            self.problems.append(Problem(f"homelab_ai_models[{index}] ({model['name']}).args", str(exc), "correct the llama-server argument"))
            return None
        sized = self._estimate(index, model, settings)
        if sized is None:
            return None
        entry.bytes, entry.basis, entry.detail, entry.notes, entry.sized_by = sized
        return entry

    def _ollama(self, workload: GpuWorkload, entry: PlanEntry) -> Optional[PlanEntry]:
        sizes: List[Tuple[int, str]] = []
        for name in workload.models:
            found = self._model(workload, name)
            if found is None:
                continue
            index, model = found
            context = int(model.get("context") or _OLLAMA_CONTEXT)
            settings = LlamaSettings(n_ctx=context, flash_attn="on" if workload.flash_attention else "off")
            sized = self._estimate(index, model, settings, ollama=True)
            if sized is not None:
                sizes.append((sized[0], f"{name} ({format_bytes(sized[0])}, {sized[1]})"))
        if not sizes:
            return None
        entry.sized_by = "ollama"
        largest = sorted(sizes, reverse=True)[: max(1, workload.max_loaded)]
        entry.bytes = sum(size for size, _ in largest)
        loaded = f"{workload.max_loaded} loaded at once" if workload.max_loaded > 1 else "one loaded at a time"
        entry.basis = f"largest of its models, {loaded}: {', '.join(text for _, text in largest)}"
        return entry

    def _estimate(
        self, index: int, model: Mapping[str, Any], settings: LlamaSettings, ollama: bool = False
    ) -> Optional[Tuple[int, str, Dict[str, int], List[str], str]]:
        where = f"homelab_ai_models[{index}] ({model['name']})"
        if model.get("vram"):
            return int(model["vram"]), "catalog vram", {}, [], "budget"
        source = str(model.get("source") or "")
        info, reason = self._header(source)
        if info is not None:
            try:
                estimate = estimate_llamacpp(info, settings)
            except ValueError as exc:
                reason = str(exc)
            else:
                detail = {"weights": estimate.weights, "kv_cache": estimate.kv_cache, "compute": estimate.compute}
                basis = f"GGUF header, context {estimate.n_ctx}, KV {settings.type_k}/{settings.type_v}"
                return estimate.total, basis, detail, estimate.notes, "header"
        if model.get("size"):
            size = int(model["size"])
            weights, layer_note = size, []
            if settings.n_gpu_layers < (model.get("layers") or MAX_LAYERS):
                if model.get("layers"):
                    # the layers hold nearly all of the file: the share of them on the GPU, of the weights and the cache
                    weights = size * settings.n_gpu_layers // int(model["layers"])
                    layer_note = [f"{settings.n_gpu_layers} of {model['layers']} layers on the GPU"]
                else:
                    layer_note = [f"all layers counted: gpu_layers {settings.n_gpu_layers} needs the model's layers: (its block count) without a header"]
            rough = weights + int(weights * _FALLBACK_SHARE) + _FALLBACK_FIXED
            self.notes.append(f"{where}: no GGUF header ({reason}); sized from the catalog size + 10 % + 512 MiB")
            if model.get("mode") == "embedding" and not ollama:
                # an embedding micro-batch is the whole context, and llama.cpp reserves the output for all of it:
                # vocabulary x tokens x 4 bytes, which only the header's vocabulary can tell (estimate_llamacpp counts it)
                example = _QWEN3_VOCAB * settings.n_ubatch * 4
                self.notes.append(
                    f"{where}: not counted without the header: the output buffer of its micro-batch of {settings.n_ubatch} tokens "
                    f"(vocabulary x {settings.n_ubatch} x 4 bytes; {format_bytes(example)} for Qwen3's {_QWEN3_VOCAB} tokens). "
                    "Fix: let the plan read the header (deliver_vram_fetch), or set vram: in the catalog entry"
                )
            return rough, "catalog size + allowance (no header)", {}, layer_note, "catalog-size"
        params = _tag_parameters(source) if ollama else None
        if params:
            weights = int(params * _OLLAMA_BYTES_PER_PARAM)
            rough = weights + int(weights * _FALLBACK_SHARE) + _FALLBACK_FIXED
            self.notes.append(
                f"{where}: no GGUF header ({reason}); sized from the {params / 1e9:g}B parameters of its tag at ~4.85 bits per weight (Q4_K_M) + 10 % + 512 MiB"
            )
            return rough, f"{params / 1e9:g}B parameters of the tag (no header)", {}, [], "tag"
        self.problems.append(
            Problem(
                where,
                f"the VRAM plan cannot size it: its GGUF header is unavailable ({reason}) and the catalog gives neither vram nor size",
                "set vram: (what it needs on the GPU) or size: (the file size) in the catalog entry, "
                "or run once where the model's host can be reached (the header is cached)",
            )
        )
        return None


def _tag_parameters(source: str) -> Optional[float]:
    """Parameters named by an Ollama tag: ``llama3.2:3b`` -> 3e9, ``mixtral:8x7b`` -> 56e9, ``qwen3:0.6b`` -> 6e8."""
    tag = source.rsplit(":", 1)[-1].lower() if source.count(":") >= 2 else ""
    match = re.match(r"^(?:(\d+)x)?(\d+(?:\.\d+)?)([bm])(?:$|[-_])", tag)
    if not match:
        return None
    experts = int(match.group(1) or 1)
    return experts * float(match.group(2)) * (1e9 if match.group(3) == "b" else 1e6)
