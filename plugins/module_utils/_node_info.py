# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""What the node bootstrap needs to know about a node before it changes anything.

Runs on the nodes (module ``node_info``): standard library only, Python 3.9+, reads only. Every place it
reads is a parameter (``proc``, ``sysfs``, ``modules``, ``run``, ``root``) so that tests point it at fixture trees:
memory size, the running kernel's command line and release, which kernel modules are loaded or installed, the
NVIDIA driver, whether systemd runs and a reboot is flagged, the boot loader's files and which systemd units
exist. The GPUs themselves are ``gpu_facts``' business.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any, Callable, Dict, List, Optional, Sequence

__all__ = ["UNIT_DIRS", "gather_node_info"]

UNIT_DIRS = ("etc/systemd/system", "run/systemd/system", "usr/lib/systemd/system", "lib/systemd/system")
_NVIDIA_VERSION = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+([0-9][0-9.]*)")


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def memory_total(proc: str) -> Optional[int]:
    """MemTotal of ``/proc/meminfo`` in bytes."""
    for line in (_read(os.path.join(proc, "meminfo")) or "").splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                unit = fields[2].lower() if len(fields) > 2 else "kb"
                return int(fields[1]) * (1024 if unit == "kb" else 1)
    return None


def module_names(text: str) -> List[str]:
    """Module names of a ``modules.dep`` or ``modules.builtin`` file (``kernel/.../iscsi_tcp.ko.xz:`` -> iscsi_tcp)."""
    names = []
    for line in text.splitlines():
        path = line.split(":", 1)[0].strip()
        if not path:
            continue
        base = os.path.basename(path)
        base = re.sub(r"\.ko(\.[a-z0-9]+)?$", "", base)
        names.append(base.replace("-", "_"))
    return names


def kernel_modules(proc: str, sysfs: str, modules_root: str, release: Optional[str], wanted: Sequence[str]) -> Dict[str, Dict[str, bool]]:
    """For each module in ``wanted``: loaded (``/sys/module/NAME``), built in, installed for the running kernel."""
    installed: List[str] = []
    builtin: List[str] = []
    if release:
        base = os.path.join(modules_root, release)
        installed = module_names(_read(os.path.join(base, "modules.dep")) or "")
        builtin = module_names(_read(os.path.join(base, "modules.builtin")) or "")
    loaded_proc = {line.split()[0] for line in (_read(os.path.join(proc, "modules")) or "").splitlines() if line.strip()}
    result = {}
    for name in wanted:
        key = name.replace("-", "_")
        is_builtin = key in builtin
        result[name] = {
            "loaded": is_builtin or key in loaded_proc or os.path.isdir(os.path.join(sysfs, "module", key)),
            "builtin": is_builtin,
            "installed": is_builtin or key in installed,
        }
    return result


def nvidia_driver(proc: str) -> Optional[str]:
    """Version of the loaded NVIDIA kernel module (``/proc/driver/nvidia/version``), or None."""
    text = _read(os.path.join(proc, "driver", "nvidia", "version"))
    if text is None:
        return None
    match = _NVIDIA_VERSION.search(text)
    return match.group(1) if match else "unknown"


def units(root: str, names: Sequence[str]) -> Dict[str, bool]:
    """Whether a systemd unit file exists for each name (``.service`` is added to names without a suffix)."""
    found = {}
    for name in names:
        unit = name if "." in name else name + ".service"
        found[name] = any(os.path.exists(os.path.join(root, directory, unit)) for directory in UNIT_DIRS)
    return found


def boot_loader(root: str, which: Callable[[str], Optional[str]] = shutil.which) -> Dict[str, Any]:
    """The boot loader files and tools a kernel argument change goes through."""
    return {
        "grub_defaults": os.path.isfile(_under(root, "/etc/default/grub")),
        "kernel_cmdline_file": os.path.isfile(_under(root, "/etc/kernel/cmdline")),
        "update_grub": which("update-grub") if root == "/" else None,
        "grub2_mkconfig": which("grub2-mkconfig") if root == "/" else None,
        "grubby": which("grubby") if root == "/" else None,
    }


def gather_node_info(
    *,
    proc: str = "/proc",
    sysfs: str = "/sys",
    modules: str = "/lib/modules",
    run: str = "/run",
    root: str = "/",
    kernel_modules_wanted: Sequence[str] = (),
    unit_names: Sequence[str] = (),
    which: Callable[[str], Optional[str]] = shutil.which,
) -> Dict[str, Any]:
    """Everything above as one dict (the module's return value)."""
    release = (_read(os.path.join(proc, "sys", "kernel", "osrelease")) or "").strip() or None
    reboot_pkgs = (_read(os.path.join(run, "reboot-required.pkgs")) or "").split()
    cmdline = _read(os.path.join(proc, "cmdline"))
    return {
        "kernel_release": release,
        "memory_total": memory_total(proc),
        "cmdline": cmdline.strip() if cmdline is not None else None,
        "kernel_modules": kernel_modules(proc, sysfs, modules, release, [*kernel_modules_wanted, "nvidia"]),
        "nvidia_driver": nvidia_driver(proc),
        "reboot_required": os.path.exists(os.path.join(run, "reboot-required")),
        "reboot_required_pkgs": sorted(set(reboot_pkgs)),
        # sd_booted(): systemd is PID 1 exactly when this directory exists
        "systemd_running": os.path.isdir(os.path.join(run, "systemd", "system")),
        "units": units(root, unit_names),
        "boot_loader": boot_loader(root, which),
    }
