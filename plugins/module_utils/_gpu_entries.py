# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""``homelab_ai_gpus`` entries, read by one parser: the inventory's (strict) and the node bootstrap's (lenient).

An entry says vendor, model, memory, count and apu (and ``sharing``, which the inventory reads on top). The inventory
checks it strictly: memory is required and no unknown key is allowed. The node bootstrap is lenient on purpose: the
entries ``homelab.ai.gpu_facts`` detects carry more keys and may lack the memory, and the cluster preflight is where
declared entries are checked strictly. Both read every field under the same rules (``_formats``' readers).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from ._formats import read_int, read_quantity, unknown_keys
from ._problems import Problem, suggest

__all__ = ["GPU_KEYS", "MAX_GPUS", "MAX_GPU_MEMORY", "VENDORS", "gpu_entry"]

VENDORS = ("nvidia", "amd", "intel")
GPU_KEYS = ("vendor", "model", "memory", "count", "sharing", "apu")
# bounds past which a value is a slip, not a choice
MAX_GPU_MEMORY = 4 * 2**40
MAX_GPUS = 16


def gpu_entry(where: str, raw: Any, problems: List[Problem], *, strict: bool = True) -> Optional[Dict[str, Any]]:
    """One entry as {vendor, model, memory (bytes, or None where lenient), count, apu}; None when it cannot be read
    (a problem says why). ``strict``: the memory is required and only ``GPU_KEYS`` are allowed."""
    if not isinstance(raw, Mapping):
        problems.append(Problem(where, f"{raw!r} is not a mapping", "write vendor, memory and optionally model, count, sharing, apu"))
        return None
    if strict:
        unknown_keys(where, raw, GPU_KEYS, problems)
    vendor = raw.get("vendor")
    if vendor not in VENDORS:
        problems.append(Problem(f"{where}.vendor", f"{vendor!r} is not a known GPU vendor{suggest(str(vendor), VENDORS)}", f"use one of {', '.join(VENDORS)}"))
        return None
    memory, apu = raw.get("memory"), raw.get("apu")
    if apu is None:
        apu = False
    elif not isinstance(apu, bool):  # an entry of a list comes from YAML, never as a string from `-e name=value`
        problems.append(Problem(f"{where}.apu", f"{apu!r} is not true or false", "write true or false"))
        apu = False
    return {
        "vendor": str(vendor),
        "model": str(raw.get("model") or vendor),
        "memory": read_quantity(f"{where}.memory", memory if strict or memory != "" else None, problems, required=strict, maximum=MAX_GPU_MEMORY),
        "count": read_int(f"{where}.count", raw.get("count"), problems, minimum=1, default=1, maximum=MAX_GPUS),
        "apu": apu,
    }
