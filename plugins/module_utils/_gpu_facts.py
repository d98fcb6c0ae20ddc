# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The GPUs of a node, read from sysfs (and ``nvidia-smi`` for NVIDIA memory).

Runs on the nodes: standard library only, Python 3.9+. Every path is relative to ``sysfs_root`` and
``dev_root`` so that tests run on fixture trees. The result has the shape of the declared
``homelab_ai_gpus`` entries (vendor, model, memory, count, apu) plus what only detection knows
(PCI addresses, driver, render nodes and the GID owning them).
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import subprocess
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ["PCI_VENDORS", "Runner", "gather_gpu_facts", "run_command"]

PCI_VENDORS = {"0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel"}
_DISPLAY_CLASS = "0x03"  # PCI base class 03: VGA (0300), XGA (0301), 3D controller (0302), other display (0380)
# AMD APUs whose BIOS carve-out may be large, so the VRAM heuristic below cannot tell them from a discrete card.
_AMD_APU_DEVICE_IDS = frozenset(
    {
        "0x1586",  # Strix Halo (Radeon 8050S/8060S)
        "0x150e",  # Strix Point (Radeon 880M/890M)
        "0x15bf",  # Phoenix (Radeon 780M)
        "0x15c8",  # Phoenix 2
        "0x1681",  # Rembrandt (Radeon 680M)
        "0x164e",  # Raphael / Granite Ridge
        "0x13c0",  # Granite Ridge
        "0x1638",  # Cezanne
        "0x1636",  # Renoir
        "0x164c",  # Lucienne
        "0x15e7",  # Barcelo
        "0x1506",  # Mendocino
        "0x163f",  # Van Gogh
        "0x15d8",  # Picasso
        "0x15dd",  # Raven Ridge
    }
)
_APU_VRAM_LIMIT = 2 * 2**30  # an amdgpu device with at most this much VRAM and more GTT is an APU's UMA carve-out
_INTEL_IGPU_ADDRESS = "0000:00:02.0"  # where every Intel integrated GPU sits
_NVIDIA_QUERY = "pci.bus_id,name,memory.total,driver_version,uuid"
_PCI_IDS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids", "/usr/share/pci.ids")

Runner = Callable[[Sequence[str]], Tuple[int, str, str]]


def run_command(argv: Sequence[str]) -> Tuple[int, str, str]:
    """Run a command without a shell; (rc, stdout, stderr). A missing binary is rc 127."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        return 127, "", str(exc)
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]} did not answer within 30 s"
    return proc.returncode, proc.stdout, proc.stderr


def gather_gpu_facts(
    sysfs_root: str = "/sys",
    dev_root: str = "/dev",
    *,
    nvidia_smi: Optional[str] = None,
    runner: Runner = run_command,
    pci_ids_paths: Sequence[str] = _PCI_IDS,
) -> Dict[str, Any]:
    """Every NVIDIA, AMD and Intel display device of the node, grouped like ``homelab_ai_gpus``.

    ``nvidia_smi`` is the binary to ask for NVIDIA memory (default: ``nvidia-smi`` on PATH when present).
    """
    warnings: List[str] = []
    devices = _pci_gpus(sysfs_root, dev_root)
    if any(d["vendor"] == "nvidia" for d in devices):
        _add_nvidia_smi(devices, nvidia_smi if nvidia_smi is not None else shutil.which("nvidia-smi"), runner, warnings)
    names = _pci_names(devices, pci_ids_paths)
    for device in devices:
        if not device["model"]:
            device["model"] = names.get((device["vendor_id"], device["device_id"])) or f"{device['vendor']} {device['device_id']}"
        if device["memory"] is None:
            warnings.append(f"{device['pci_address']} ({device['vendor']}): the driver does not report its memory; declare it in homelab_ai_gpus (memory: ...)")
    render_nodes = [d["render_node"] for d in devices if d["render_node"]]
    render_gids = sorted({gid for gid in (_gid(os.path.join(dev_root, "dri", os.path.basename(node))) for node in render_nodes) if gid is not None})
    kfd = os.path.join(dev_root, "kfd")
    kfd_gid = _gid(kfd)
    return {
        "gpus": _group(devices),
        "devices": devices,
        "count": len(devices),
        "vendors": sorted({d["vendor"] for d in devices}),
        "render_nodes": render_nodes,
        # the GIDs a non-root pod needs as supplementalGroups to open the render nodes (and /dev/kfd for ROCm)
        "render_gids": render_gids,
        "render_groups": [_group_name(gid) for gid in render_gids],
        "kfd": {"path": "/dev/kfd", "gid": kfd_gid, "group": _group_name(kfd_gid)} if kfd_gid is not None else None,
        "device_gids": sorted(set(render_gids) | ({kfd_gid} if kfd_gid is not None else set())),
        "warnings": warnings,
    }


# --- sysfs --------------------------------------------------------------------------------------------------------------


def _pci_gpus(sysfs_root: str, dev_root: str) -> List[Dict[str, Any]]:
    base = os.path.join(sysfs_root, "bus", "pci", "devices")
    if not os.path.isdir(base):
        return []
    devices = []
    for address in sorted(os.listdir(base)):
        path = os.path.join(base, address)
        vendor_id = (_read(os.path.join(path, "vendor")) or "").lower()
        pci_class = (_read(os.path.join(path, "class")) or "").lower()
        if vendor_id not in PCI_VENDORS or not pci_class.startswith(_DISPLAY_CLASS):
            continue
        vendor = PCI_VENDORS[vendor_id]
        device_id = (_read(os.path.join(path, "device")) or "").lower()
        driver = _link_name(os.path.join(path, "driver"))
        card, render = _drm_nodes(path)
        device: Dict[str, Any] = {
            "pci_address": address,
            "vendor": vendor,
            "vendor_id": vendor_id,
            "device_id": device_id,
            "pci_class": pci_class,
            "model": _read(os.path.join(path, "product_name")) or "",  # amdgpu, from the VBIOS, where the board has one
            "driver": driver,
            "card_node": f"/dev/dri/{card}" if card else None,
            "render_node": f"/dev/dri/{render}" if render and os.path.exists(os.path.join(dev_root, "dri", render)) else None,
            "numa_node": _int(_read(os.path.join(path, "numa_node"))),
            "memory": None,
            "vram": None,
            "gtt": None,
            "apu": False,
            "source": "sysfs",
        }
        if vendor == "amd":
            _amd_memory(path, device)
        elif vendor == "intel":
            _intel_memory(sysfs_root, path, card, device)
        devices.append(device)
    return devices


def _drm_nodes(path: str) -> Tuple[Optional[str], Optional[str]]:
    drm = os.path.join(path, "drm")
    names = sorted(os.listdir(drm)) if os.path.isdir(drm) else []
    card = next((n for n in names if re.match(r"^card\d+$", n)), None)
    render = next((n for n in names if re.match(r"^renderD\d+$", n)), None)
    return card, render


def _amd_memory(path: str, device: Dict[str, Any]) -> None:
    vram = _int(_read(os.path.join(path, "mem_info_vram_total")))
    gtt = _int(_read(os.path.join(path, "mem_info_gtt_total")))
    device.update(vram=vram, gtt=gtt)
    apu = device["device_id"] in _AMD_APU_DEVICE_IDS or (vram is not None and gtt is not None and vram <= _APU_VRAM_LIMIT and gtt > vram)
    device["apu"] = apu
    if apu:
        # llama.cpp on an APU allocates from the GTT (system memory the GPU maps), unless the BIOS carve-out is larger
        device["memory"] = max(v for v in (vram, gtt) if v is not None) if (vram or gtt) else None
    else:
        device["memory"] = vram


def _intel_memory(sysfs_root: str, path: str, card: Optional[str], device: Dict[str, Any]) -> None:
    device["apu"] = device["pci_address"] == _INTEL_IGPU_ADDRESS
    candidates = [os.path.join(path, "lmem_total_bytes")]
    if card:  # i915 backports register it on the DRM minor
        candidates.insert(0, os.path.join(sysfs_root, "class", "drm", card, "lmem_total_bytes"))
    for candidate in candidates:
        value = _int(_read(candidate))
        if value:
            device["memory"] = device["vram"] = value
            return
    # xe: one VRAM region per tile
    tiles = 0
    for tile in sorted(os.listdir(path)) if os.path.isdir(path) else []:
        if re.match(r"^tile\d+$", tile):
            for region in sorted(os.listdir(os.path.join(path, tile))):
                if region.startswith("vram"):
                    tiles += _int(_read(os.path.join(path, tile, region, "physical_vram_size_bytes"))) or 0
    if tiles:
        device["memory"] = device["vram"] = tiles


def _add_nvidia_smi(devices: List[Dict[str, Any]], binary: Optional[str], runner: Runner, warnings: List[str]) -> None:
    if not binary:
        warnings.append("NVIDIA GPU found but no nvidia-smi: its memory is unknown; install the NVIDIA driver utilities or declare memory in homelab_ai_gpus")
        return
    rc, out, err = runner([binary, f"--query-gpu={_NVIDIA_QUERY}", "--format=csv,noheader,nounits"])
    if rc != 0:
        warnings.append(f"nvidia-smi failed (rc {rc}): {(err or out).strip()[:200]}; is the NVIDIA driver loaded?")
        return
    by_address = {_short_bus_id(d["pci_address"]): d for d in devices if d["vendor"] == "nvidia"}
    for line in out.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 5:
            continue
        bus_id, name, memory_mib, driver_version, uuid = fields[:5]
        device = by_address.get(_short_bus_id(bus_id))
        if device is None:
            warnings.append(f"nvidia-smi reports {bus_id} ({name}), which sysfs does not list as a display device")
            continue
        mib = _int(memory_mib)
        device.update(model=name, memory=mib * 2**20 if mib else None, vram=mib * 2**20 if mib else None, driver_version=driver_version, uuid=uuid)
        device["source"] = "nvidia-smi"


def _short_bus_id(bus_id: str) -> str:
    """``00000000:01:00.0`` (nvidia-smi) and ``0000:01:00.0`` (sysfs) name the same device."""
    domain, _, rest = bus_id.lower().partition(":")
    return f"{int(domain or '0', 16):04x}:{rest}"


def _pci_names(devices: Sequence[Dict[str, Any]], paths: Sequence[str]) -> Dict[Tuple[str, str], str]:
    """Product names from pci.ids for the devices without one (a few hundred kB read once)."""
    wanted = {(d["vendor_id"][2:], d["device_id"][2:]) for d in devices if not d["model"]}
    if not wanted:
        return {}
    path = next((p for p in paths if os.path.isfile(p)), None)
    if path is None:
        return {}
    vendors = {vendor for vendor, _ in wanted}
    names: Dict[Tuple[str, str], str] = {}
    current = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("#") or not line.strip():
                continue
            if not line[0].isspace():
                current = line[:4].lower() if line[:4].lower() in vendors else None
            elif current and line.startswith("\t") and not line.startswith("\t\t"):
                device_id, _, name = line.strip().partition(" ")
                if (current, device_id.lower()) in wanted:
                    names[(f"0x{current}", f"0x{device_id.lower()}")] = name.strip()
    return names


def _group(devices: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One entry per kind of GPU (vendor, model, memory, apu) with a count, as homelab_ai_gpus declares them."""
    groups: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
    for device in devices:
        key = (device["vendor"], device["model"], device["memory"], device["apu"])
        if key not in groups:
            groups[key] = {
                "vendor": device["vendor"],
                "model": device["model"],
                "memory": device["memory"],
                "count": 0,
                "apu": device["apu"],
                "driver": device["driver"],
                "pci_addresses": [],
                "render_nodes": [],
            }
            if device["vendor"] == "amd":
                groups[key].update(vram=device["vram"], gtt=device["gtt"])
        group = groups[key]
        group["count"] += 1
        group["pci_addresses"].append(device["pci_address"])
        if device["render_node"]:
            group["render_nodes"].append(device["render_node"])
    return list(groups.values())


# --- small helpers ------------------------------------------------------------------------------------------------------


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _int(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    text = text.strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


def _link_name(path: str) -> Optional[str]:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def _gid(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_gid
    except OSError:
        return None


def _group_name(gid: Optional[int]) -> Optional[str]:
    if gid is None:
        return None
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None
