# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Pod Security Standards: the strictest level (restricted, baseline, privileged) that a pod meets.

The namespaces the collection creates enforce the strictest level that all of their pods meet, so that a pod that
loses a setting is refused rather than let in, and audit and warn at ``restricted``, so that what keeps a pod from
it shows. The rules are those of the Pod Security Standards (kubernetes.io/docs/concepts/security/pod-security-
standards, "latest"), the parts that the collection's pods can touch.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Mapping

__all__ = ["LEVELS", "level", "namespace_level", "problems"]

LEVELS = ("restricted", "baseline", "privileged")
_BASELINE_CAPABILITIES = frozenset(
    {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
)
_RESTRICTED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"})
_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})


def _containers(pod: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or []), *(pod.get("ephemeralContainers") or [])]


def problems(pod: Mapping[str, Any], wanted: str) -> List[str]:
    """What keeps a pod spec from a level (empty: it meets it)."""
    found: List[str] = []
    if wanted == "privileged":
        return found
    context = pod.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            found.append(f"{field}")
    if any("hostPath" in volume for volume in pod.get("volumes") or []):
        found.append("hostPath volumes")
    pod_selinux = context.get("seLinuxOptions") or {}
    for container in _containers(pod):
        name = container.get("name", "?")
        security = container.get("securityContext") or {}
        if security.get("privileged"):
            found.append(f"{name}: privileged")
        added = set((security.get("capabilities") or {}).get("add") or [])
        if added - _BASELINE_CAPABILITIES:
            found.append(f"{name}: adds capabilities {sorted(added - _BASELINE_CAPABILITIES)}")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            found.append(f"{name}: hostPort")
        selinux = security.get("seLinuxOptions") or pod_selinux
        if selinux.get("type", "") not in _SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
            found.append(f"{name}: seLinuxOptions")
        seccomp = (security.get("seccompProfile") or context.get("seccompProfile") or {}).get("type")
        if seccomp == "Unconfined":
            found.append(f"{name}: seccomp Unconfined")
        if wanted == "restricted":
            if security.get("allowPrivilegeEscalation") is not False:
                found.append(f"{name}: allowPrivilegeEscalation is not false")
            non_root = security.get("runAsNonRoot", context.get("runAsNonRoot"))
            user = security.get("runAsUser", context.get("runAsUser"))
            if non_root is not True or user == 0:
                found.append(f"{name}: may run as root")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                found.append(f"{name}: no RuntimeDefault seccomp profile")
            capabilities = security.get("capabilities") or {}
            if "ALL" not in (capabilities.get("drop") or []) or set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
                found.append(f"{name}: capabilities not dropped")
    if wanted == "restricted":
        for volume in pod.get("volumes") or []:
            kinds = set(volume) - {"name"}
            if kinds - _RESTRICTED_VOLUMES:
                found.append(f"volume {volume.get('name')}: {sorted(kinds - _RESTRICTED_VOLUMES)}")
    return found


def level(pod: Mapping[str, Any]) -> str:
    """The strictest level the pod spec meets."""
    return next(wanted for wanted in LEVELS if not problems(pod, wanted))


def namespace_level(pods: Iterable[Mapping[str, Any]]) -> str:
    """The strictest level that every pod meets; baseline where the collection renders none (charts make them)."""
    levels = [LEVELS.index(level(pod)) for pod in pods]
    return LEVELS[max(levels)] if levels else "baseline"
