# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The node bootstrap's decisions: inventory checks, and the plan for one node.

``check_node`` looks at the inventory only (connection, SSH user, k3s groups, GPUs) and runs before anything
connects to the node. ``node_plan`` takes the node's GPUs (declared ``homelab_ai_gpus`` or detected ones), what
``node_info`` read on the node, and the role's settings, and returns what to install and configure, the kernel
arguments (the GTT size of AMD APUs), why a reboot is pending, and the problems that must stop the run before
any change. Pure functions: the role's tasks only carry the plan out.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ._formats import read_quantity
from ._gpu_entries import VENDORS, gpu_entry
from ._gpus import GPU_LABEL_PREFIX
from ._kernel_cmdline import CmdlineError, missing, normalise_args
from ._problems import Problem
from ._quantity import format_bytes

__all__ = [
    "BOOT_LOADERS",
    "OS_FAMILIES",
    "SSH_CONNECTIONS",
    "VENDORS",
    "check_node",
    "gtt_kernel_args",
    "gtt_size",
    "joining_k3s",
    "node_plan",
    "normalise_gpus",
]

OS_FAMILIES = ("Debian", "RedHat")
BOOT_LOADERS = ("auto", "grub", "none")
# connection plugins that log in as a user, so the inventory has to say which one
SSH_CONNECTIONS = frozenset({"ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh", "ansible.netcommon.libssh"})
GPU_GROUPS = {"amd": ("render", "video"), "intel": ("render",), "nvidia": ()}
PAGE_SIZE = 4096  # TTM counts pages; 4 KiB on x86_64 and on the arm64 kernels distributions ship
# keys only homelab.ai.gpu_facts puts into an entry: such an entry was detected, not declared
_DETECTED_KEYS = ("pci_addresses", "render_nodes", "driver")
_K3S_VERSION = re.compile(r"^v[0-9]+\.[0-9]+\.[0-9]+\+k3s[0-9]+$")


def _memory(where: str, value: Any, problems: List[Problem]) -> Optional[int]:
    """A size the role's settings may leave empty."""
    return read_quantity(where, None if value == "" else value, problems)


def normalise_gpus(where: str, raw: Any) -> Tuple[List[Dict[str, Any]], List[Problem]]:
    """GPU entries shaped like ``homelab_ai_gpus`` (vendor, model, memory, count, apu), memory in bytes or None.

    Read by the inventory's parser, leniently (``_gpu_entries``). ``detected`` tells declared and detected entries apart:
    the memory gpu_facts reports for an APU is the GTT the running kernel gives it, not a target.
    """
    problems: List[Problem] = []
    if raw is None:
        return [], problems
    if not isinstance(raw, list):
        return [], [Problem(where, f"must be a list of GPUs, got {type(raw).__name__}", "write one '- vendor: ...' entry per kind of GPU")]
    gpus = []
    for index, entry in enumerate(raw):
        gpu = gpu_entry(f"{where}[{index}]", entry, problems, strict=False)
        if gpu is not None:
            gpus.append({**gpu, "detected": any(key in entry for key in _DETECTED_KEYS)})
    return gpus, problems


# --- inventory checks (before connecting) ----------------------------------------------------------


def _true(value: Any) -> bool:
    """A boolean as Ansible's ``bool`` filter reads it (an extra var comes as a string)."""
    return value is True or (not isinstance(value, bool) and str(value).strip().lower() in ("1", "true", "yes", "on", "y", "t"))


def joining_k3s(hosts: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """The hosts whose bootstrap installs k3s in this run (``node_bootstrap_enabled`` and ``node_bootstrap_k3s_join``).

    Such a run may be making the cluster, so apply mode checks the way to it after the node bootstrap, not before.
    """
    return [host for host, hvars in hosts.items() if _true(hvars.get("node_bootstrap_enabled")) and _true(hvars.get("node_bootstrap_k3s_join"))]


def check_node(
    host: str,
    *,
    connection: str,
    remote_user: Optional[str],
    local_user: str,
    groups: Mapping[str, Sequence[str]],
    gpus: Any,
    k3s: Mapping[str, Any],
    addresses: Optional[Mapping[str, str]] = None,
) -> Tuple[Dict[str, Any], List[Problem]]:
    """Problems of one node's inventory entry, and its place in a k3s cluster.

    ``groups`` maps group names to their hosts (Ansible's ``groups``); ``k3s`` holds the role's k3s settings
    (join, token_set, version, server_group, agent_group, api_endpoint); ``addresses`` maps hosts to their
    ``ansible_host``. Returns ({role, first_server, server_url}, problems).
    """
    problems: List[Problem] = []
    if connection in SSH_CONNECTIONS and not remote_user:
        problems.append(
            Problem(
                f"{host}: ansible_user",
                f"is not set, so SSH would log in as the controller's user {local_user!r}",
                f"set ansible_user to the node's admin user (host_vars/{host}.yml, or the node group's group_vars for every node) "
                "or remote_user in ansible.cfg; that user needs passwordless sudo",
            )
        )
    _, gpu_problems = normalise_gpus(f"{host}: node_bootstrap_gpus", gpus)
    problems.extend(gpu_problems)

    server_group = str(k3s.get("server_group") or "server")
    agent_group = str(k3s.get("agent_group") or "agent")
    servers = list(groups.get(server_group) or [])
    agents = list(groups.get(agent_group) or [])
    in_server, in_agent = host in servers, host in agents
    if in_server and in_agent:
        problems.append(
            Problem(
                f"{host}: groups {server_group} and {agent_group}",
                "the host is in both, but a k3s node is either a server or an agent",
                f"remove {host} from one of the two groups (a server runs workloads too, so keep GPU nodes as agents "
                "unless they are meant to run the control plane)",
            )
        )
    role = "server" if in_server and not in_agent else "agent" if in_agent and not in_server else None
    first_server = servers[0] if servers else None
    endpoint = str(k3s.get("api_endpoint") or "")
    if not endpoint and first_server:
        endpoint = str((addresses or {}).get(first_server) or first_server)
    server_url = f"https://{endpoint}:6443" if endpoint else ""
    if k3s.get("join"):
        if role is None and not (in_server and in_agent):
            problems.append(
                Problem(
                    f"{host}: node_bootstrap_k3s_join",
                    f"is true, but the host is in neither the {server_group} nor the {agent_group} group",
                    f"add {host} to one of them (the k3s-ansible layout: groups {server_group} and {agent_group} under k3s_cluster), "
                    "or set node_bootstrap_k3s_join: false for it",
                )
            )
        if not k3s.get("token_set"):
            problems.append(
                Problem(
                    f"{host}: node_bootstrap_k3s_token",
                    "is empty, and k3s nodes join a cluster with its token",
                    "put the token into a SOPS-encrypted vars file (for example group_vars/k3s_cluster/k3s.sops.yml with the "
                    "community.sops.sops vars plugin enabled) as node_bootstrap_k3s_token; k3s-ansible's `token` is read too",
                )
            )
        version = str(k3s.get("version") or "")
        if not _K3S_VERSION.match(version):
            problems.append(Problem(f"{host}: node_bootstrap_k3s_version", f"{version!r} is not a k3s release", "write a release tag such as v1.33.5+k3s1"))
        if role == "agent" and not server_url:
            problems.append(
                Problem(
                    f"{host}: node_bootstrap_k3s_api_endpoint",
                    f"is empty and the {server_group} group has no host, so the agent has no server to join",
                    f"add the cluster's first server to the {server_group} group, or set node_bootstrap_k3s_api_endpoint to its address",
                )
            )
    return {"role": role, "first_server": first_server, "server_url": server_url}, problems


# --- the plan (after reading the node) ---------------------------------------------------------------


def gtt_size(memory_total: int, *, declared: Optional[int], override: Optional[int], reserve: int) -> Tuple[int, str]:
    """How much system memory an AMD APU may map (GTT), in bytes, and where the number comes from.

    ``override`` (node_bootstrap_amd_gtt_size) wins, then the APU's declared ``memory`` (what llama.cpp should be
    able to allocate), else everything but ``reserve`` (node_bootstrap_amd_gtt_reserve). Rounded down to MiB.
    Raises ValueError when that leaves less than ``reserve`` to the system.
    """
    if override:
        size, source = override, "node_bootstrap_amd_gtt_size"
    elif declared:
        size, source = declared, "the APU's declared memory"
    else:
        size, source = memory_total - reserve, f"memory minus node_bootstrap_amd_gtt_reserve ({format_bytes(reserve)})"
    size = (size // 2**20) * 2**20
    if size <= 0 or size > memory_total - reserve:
        raise ValueError(
            f"a GTT of {format_bytes(max(size, 0))} ({source}) leaves less than node_bootstrap_amd_gtt_reserve "
            f"({format_bytes(reserve)}) of the node's {format_bytes(memory_total)} to the system"
        )
    return size, source


def gtt_kernel_args(size: int) -> Dict[str, str]:
    """Kernel arguments giving an AMD APU a GTT of ``size`` bytes.

    ``amdgpu.gttsize`` is in MiB (older kernels read it); ``ttm.pages_limit`` caps what TTM hands out, in pages
    (kernels from 6.10 on size the GTT from it and call ``gttsize`` deprecated). Both are set so any kernel agrees.
    """
    mib = size // 2**20
    return {"amdgpu.gttsize": str(mib), "ttm.pages_limit": str(mib * (2**20 // PAGE_SIZE))}


def _packages(table: Mapping[str, Any], key: str) -> List[str]:
    value = table.get(key) or []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def node_plan(gpus_raw: Any, info: Mapping[str, Any], settings: Mapping[str, Any]) -> Dict[str, Any]:
    """What the role does on one node. ``settings`` keys:

    host, container (bool), packages (the OS's package table), longhorn (bool), kernel_modules (list),
    detected (what homelab.ai.gpu_facts found on the node, or None),
    nvidia_driver_install (bool), nvidia_driver_packages (list; empty: the OS's), amd_gtt_size, amd_gtt_reserve,
    kernel_args (dict of extra arguments), bootloader (auto, grub, none), grub_tool (the ``boot_loader`` key of
    ``node_info`` that regenerates the entries: update_grub or grubby), node_labels (dict), proc, sysfs.
    """
    host = str(settings.get("host") or "node")
    problems: List[Problem] = []
    warnings: List[str] = []
    gpus, gpu_problems = normalise_gpus(f"{host}: node_bootstrap_gpus", gpus_raw)
    problems.extend(gpu_problems)
    vendors = sorted({gpu["vendor"] for gpu in gpus})
    table = settings.get("packages") or {}
    proc = str(settings.get("proc") or "/proc")
    sysfs = str(settings.get("sysfs") or "/sys")
    release = info.get("kernel_release") or "unknown"
    reboot: List[str] = []

    packages: List[str] = []
    if settings.get("longhorn", True):
        packages += _packages(table, "longhorn")
    for vendor in ("amd", "intel"):
        if vendor in vendors:
            packages += _packages(table, f"{vendor}_firmware")

    # what the inventory says against what the node shows
    detected = settings.get("detected")
    if isinstance(detected, Mapping):
        found = sorted(str(vendor) for vendor in detected.get("vendors") or [])
        for vendor in vendors:
            if vendor not in found:
                warnings.append(
                    f"{host}: node_bootstrap_gpus has an {vendor} GPU, but gpu_facts found no {vendor} display device under "
                    f"{sysfs}/bus/pci/devices (found: {', '.join(found) or 'none'}); check the inventory, or whether the card is seated "
                    "and enabled in the firmware"
                )

    # NVIDIA: the toolkit always, the driver only when asked to
    nvidia: Dict[str, Any] = {"driver": info.get("nvidia_driver"), "installed": False, "install": False}
    nvidia_packages: List[str] = []
    if "nvidia" in vendors:
        module = (info.get("kernel_modules") or {}).get("nvidia") or {}
        nvidia["installed"] = bool(module.get("installed"))
        present = nvidia["driver"] is not None or nvidia["installed"]
        nvidia_packages = _packages(table, "nvidia_toolkit")
        if not present:
            if settings.get("nvidia_driver_install"):
                driver_packages = list(settings.get("nvidia_driver_packages") or []) or _packages(table, "nvidia_driver")
                if not driver_packages:
                    problems.append(
                        Problem(
                            f"{host}: node_bootstrap_nvidia_driver_packages",
                            "is empty and this distribution has no default driver packages",
                            "list the driver packages of your distribution, or install the driver by hand",
                        )
                    )
                packages += driver_packages
                nvidia["install"] = True
                reboot.append("the NVIDIA driver is installed by this run and loads at the next boot")
            else:
                problems.append(
                    Problem(
                        f"{host}: NVIDIA driver",
                        f"is neither loaded ({proc}/driver/nvidia/version) nor installed for the running kernel {release}",
                        "install the driver (Debian: nvidia-driver from non-free; Ubuntu: ubuntu-drivers install --gpgpu), "
                        "or set node_bootstrap_nvidia_driver_install: true to let the bootstrap install it",
                    )
                )
        elif nvidia["driver"] is None:
            reboot.append(f"the NVIDIA driver is installed for {release} but not loaded (modprobe nvidia, or reboot)")

    # kernel arguments: the GTT of AMD APUs, and whatever else the inventory adds
    kernel_args: Dict[str, Optional[str]] = {}
    gtt: Optional[Dict[str, Any]] = None
    apus = [gpu for gpu in gpus if gpu["vendor"] == "amd" and gpu["apu"]]
    if apus:
        memory_total = info.get("memory_total")
        reserve = _memory(f"{host}: node_bootstrap_amd_gtt_reserve", settings.get("amd_gtt_reserve") or "8Gi", problems) or 0
        override = _memory(f"{host}: node_bootstrap_amd_gtt_size", settings.get("amd_gtt_size"), problems)
        declared = max((gpu["memory"] or 0 for gpu in apus if not gpu["detected"]), default=0) or None
        if not isinstance(memory_total, int) or memory_total <= 0:
            problems.append(Problem(f"{host}: {proc}/meminfo", "has no MemTotal line", "point node_bootstrap_proc_path at the node's /proc"))
        else:
            try:
                size, source = gtt_size(memory_total, declared=declared, override=override, reserve=reserve)
            except ValueError as exc:
                problems.append(
                    Problem(
                        f"{host}: AMD APU GTT size",
                        str(exc),
                        "lower the APU's memory in homelab_ai_gpus (or node_bootstrap_amd_gtt_size), or lower node_bootstrap_amd_gtt_reserve",
                    )
                )
            else:
                kernel_args.update(gtt_kernel_args(size))
                gtt = {"bytes": size, "size": format_bytes(size), "source": source, "memory_total": memory_total}
    extra = settings.get("kernel_args") or {}
    try:
        kernel_args.update(normalise_args(extra))
    except CmdlineError as exc:
        problems.append(Problem(f"{host}: node_bootstrap_kernel_args", str(exc), "write a mapping of parameter to value (null for a bare flag)"))

    boot_setting = str(settings.get("bootloader") or "auto")
    loader = info.get("boot_loader") or {}
    bootloader = boot_setting
    if boot_setting == "auto":
        bootloader = "grub" if loader.get("grub_defaults") else "none"
    kernel_args_missing: List[str] = []
    if kernel_args:
        try:
            kernel_args_missing = missing(str(info.get("cmdline") or ""), kernel_args)
        except CmdlineError:
            kernel_args_missing = []  # reported above
        if bootloader == "none" and boot_setting == "auto":
            problems.append(
                Problem(
                    f"{host}: node_bootstrap_bootloader",
                    f"is auto, but the node has no /etc/default/grub to put the kernel arguments {' '.join(kernel_args_missing) or '(see above)'} in",
                    "set node_bootstrap_bootloader: none and add the arguments to the boot loader yourself, or install GRUB",
                )
            )
        elif bootloader == "none" and kernel_args_missing:
            warnings.append(f"{host}: node_bootstrap_bootloader is none: add {' '.join(kernel_args_missing)} to the kernel command line yourself")
        grub_tool = str(settings.get("grub_tool") or "update_grub")
        if bootloader == "grub" and not settings.get("container") and not loader.get(grub_tool):
            problems.append(
                Problem(
                    f"{host}: node_bootstrap_bootloader",
                    f"is {boot_setting}, but {grub_tool.replace('_', '-')} is not installed, so the GRUB entries cannot be regenerated",
                    "install GRUB's tools, or set node_bootstrap_bootloader: none and add the arguments to the boot loader yourself",
                )
            )
        if kernel_args_missing:
            reboot.append(f"the running kernel lacks {' '.join(kernel_args_missing)}")
    if info.get("reboot_required"):
        pkgs = info.get("reboot_required_pkgs") or []
        reboot.append("the package manager flagged a reboot" + (f" ({', '.join(pkgs)})" if pkgs else ""))

    modules = [str(name) for name in settings.get("kernel_modules") or []] if settings.get("longhorn", True) else []
    module_state = info.get("kernel_modules") or {}
    labels = [f"{GPU_LABEL_PREFIX}.{vendor}=true" for vendor in vendors]
    labels += [f"{key}={value}" for key, value in sorted((settings.get("node_labels") or {}).items())]
    groups = sorted({group for vendor in vendors for group in GPU_GROUPS[vendor]})
    return {
        "vendors": vendors,
        "gpus": gpus,
        "packages": _unique(packages),
        "nvidia_packages": nvidia_packages,
        "nvidia": nvidia,
        "kernel_modules": modules,
        "kernel_modules_to_load": [name for name in modules if not (module_state.get(name) or {}).get("loaded")],
        "gpu_groups": groups,
        "kernel_args": kernel_args,
        "kernel_args_missing": kernel_args_missing,
        "bootloader": bootloader,
        "gtt": gtt,
        "node_labels": labels,
        "reboot_reasons": reboot,
        "warnings": warnings,
        "problems": [str(problem) for problem in problems],
    }


def _unique(items: Sequence[str]) -> List[str]:
    seen: Dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)
