# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Run the containers of rendered Kubernetes objects as local processes, as a kubelet would run them.

Everything a container carries is kept as rendered - command, arguments, environment, ports - except what cannot
be the same on one machine, and each such change is recorded (``Mapped``) so a test can show it changed nothing
else:

- path: a volume mount path becomes a local folder. A PersistentVolumeClaim is a folder per claim name, so a pull
  Job and the server that mounts the same claim share the files as they do in the cluster; a ConfigMap is a folder
  holding its data; an emptyDir a folder per pod.
- host: a listen address of 0.0.0.0 becomes 127.0.0.1.
- port: a container port becomes a free port on loopback.
- cluster DNS: ``http://<service>.<namespace>.svc.cluster.local:<port>`` becomes the loopback port of the container
  behind that Service (resolved through the Service's selector and target port, as kube-proxy would); in an
  environment variable, a Service with nothing started behind it becomes a closed port (a Service without endpoints).
- image: the image's entrypoint becomes a local program of the same software and release (``Images``), with what the
  image itself sets (its ENV, its WORKDIR) under the container's own environment, as a container runtime would.

``$(VAR)`` in an environment value, a command or an argument is expanded from the variables defined before it, as
the kubelet does (``$$`` escapes).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit, urlunsplit

from .tree_checks import cluster_address, service_backend

Obj = Dict[str, Any]
CLOSED_PORT = 9  # discard: nothing listens there on this machine
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion: a defined variable is replaced, an undefined reference stays, ``$$`` is ``$``."""
    return _REFERENCE.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


@dataclass(frozen=True)
class Mapped:
    """One rendered value that runs differently here, and why."""

    where: str  # "args[3]", "env LLAMA_CACHE", "config.yaml"
    rendered: str
    local: str
    why: str  # path | host | port | cluster-dns


@dataclass
class Program:
    """A local stand-in for an image's entrypoint: argv prefix, and the flag that takes the listen host (if any)."""

    argv: List[str]
    host_flag: Optional[str] = None
    add_host: bool = False  # the image listens on all addresses without a flag: give it --host 127.0.0.1 here
    translate: Optional[Callable[[List[str]], List[str]]] = None  # a different program's spelling of the arguments
    add_port: Optional[str] = None  # the image listens on its container port unasked: give it this flag and the local port
    port_env: Dict[int, str] = field(default_factory=dict)  # container port -> the variable the program reads it from
    host_env: Optional[str] = None  # the variable the program reads its listen address from
    env: Dict[str, str] = field(default_factory=dict)  # what the image sets (its ENV); the container's env wins
    image_paths: Tuple[str, ...] = ()  # variables of env naming paths of the image's own file system (HOME)
    workdir: Optional[str] = None  # the image's WORKDIR: the process starts there (a folder of the pod's file system)


@dataclass
class Started:
    name: str
    process: subprocess.Popen
    log: Path
    argv: List[str]
    env: Dict[str, str]
    mapped: List[Mapped]
    ports: Dict[int, int]  # container port -> local port

    def url(self, container_port: int) -> str:
        return f"http://127.0.0.1:{self.ports[container_port]}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Cluster:
    """The rendered objects, their secrets (decrypted), and the processes started from them."""

    def __init__(self, objects: Sequence[Obj], secrets: Sequence[Obj], workdir: Path, images: Callable[[str], Program]) -> None:
        self.objects = list(objects)
        self.secrets = {(s["metadata"].get("namespace", ""), s["metadata"]["name"]): s for s in secrets}
        self.workdir = workdir
        self.images = images
        self.started: List[Started] = []

    # -- lookups --

    def get(self, kind: str, name: str, namespace: str = "") -> Obj:
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name and (not namespace or obj["metadata"].get("namespace", "") == namespace):
                return obj
        raise KeyError(f"no {kind} {namespace}/{name} among the rendered objects")

    def of_kind(self, kind: str) -> List[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def service_backend(self, service: str, namespace: str, port: int) -> Tuple[Started, int]:
        """The started process and container port behind ``service:port`` (what kube-proxy would pick)."""
        found, problem = service_backend(self.objects, service, namespace, port)
        if not found:
            raise KeyError(problem)
        workload, _, cport = found
        for started in self.started:
            if started.name == workload["metadata"]["name"]:
                return started, cport
        raise KeyError(f"nothing started behind Service {namespace}/{service}:{port}")

    def map_url(self, url: str, *, absent_ok: bool = False) -> Tuple[str, Optional[Mapped]]:
        """A cluster DNS URL to the loopback address of the process behind it (``absent_ok``: a closed port where the
        Service is rendered but nothing was started behind it)."""
        address = cluster_address(url)
        if not address:
            return url, None
        found, problem = service_backend(self.objects, *address)
        if not found:
            raise KeyError(problem)
        try:
            started, cport = self.service_backend(*address)
            port, why = started.ports[cport], "cluster-dns"
        except KeyError:
            if not absent_ok:
                raise
            port, why = CLOSED_PORT, "cluster-dns, nothing started behind it"
        local = urlunsplit(urlsplit(url)._replace(netloc=f"127.0.0.1:{port}"))
        return local, Mapped("url", url, local, why)

    # -- volumes --

    def configmap_dir(self, name: str, namespace: str = "") -> Path:
        """The folder a ConfigMap is mounted from (made on first use; a test may change a file before a start)."""
        path = self.workdir / "configmap" / name
        if not path.exists():
            path.mkdir(parents=True)
            for key, text in (self.get("ConfigMap", name, namespace).get("data") or {}).items():
                (path / key).write_text(text)
        return path

    def _volume_dirs(self, pod_name: str, pod_spec: Obj, namespace: str) -> Dict[str, Path]:
        dirs: Dict[str, Path] = {}
        for volume in pod_spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                self.get("PersistentVolumeClaim", claim, namespace)  # a claim the tree does not render fails here
                path = self.workdir / "pvc" / claim
            elif "configMap" in volume:
                path = self.configmap_dir(volume["configMap"]["name"], namespace)
            elif "emptyDir" in volume:
                path = self.workdir / "pods" / pod_name / volume["name"]
            else:
                raise NotImplementedError(f"volume {volume['name']} of {pod_name}: only PVCs, ConfigMaps and emptyDirs run here")
            path.mkdir(parents=True, exist_ok=True)
            dirs[volume["name"]] = path
        return dirs

    # -- containers --

    def command(
        self, pod_name: str, pod_spec: Obj, container: Obj, namespace: str = "", fixed_ports: Optional[Mapping[int, int]] = None
    ) -> Tuple[List[str], Dict[str, str], List[Mapped], Dict[int, int]]:
        """(argv, env, mapped values, ports) to run ``container`` of a pod here."""
        from .servers import free_port

        dirs = self._volume_dirs(pod_name, pod_spec, namespace)
        mounts = sorted(((m["mountPath"].rstrip("/") or "/", dirs[m["name"]]) for m in container.get("volumeMounts", [])), key=lambda m: -len(m[0]))
        ports = {int(p["containerPort"]): (fixed_ports or {}).get(int(p["containerPort"])) or free_port() for p in container.get("ports", [])}
        mapped: List[Mapped] = []

        # a folder above mount points (PYTHONPATH=/opt/x for a mount at /opt/x/pkg): the pod's file system holds the
        # mounts as links at their paths
        rootfs = self.workdir / "pods" / pod_name / "rootfs"
        for mount, local in mounts:
            link = rootfs / mount.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(local)

        def path(value: str, where: str) -> str:
            new = value
            for mount, local in mounts:
                if value == mount or value.startswith(mount + "/"):
                    new = str(local) + value[len(mount) :]
                    break
            else:
                if value.startswith("/") and any(mount.startswith(value.rstrip("/") + "/") for mount, _ in mounts):
                    new = str(rootfs / value.lstrip("/"))
            if new != value:
                mapped.append(Mapped(where, value, new, "path"))
            return new

        def value_of(text: str, where: str) -> str:
            # a JSON argument (the pull Job's --spec) carries paths inside
            if text.startswith("{"):
                try:
                    data = json.loads(text)
                except ValueError:
                    data = None
                if isinstance(data, dict):
                    new_data = {k: path(v, f"{where}.{k}") if isinstance(v, str) else v for k, v in data.items()}
                    return json.dumps(new_data, sort_keys=True) if new_data != data else text
            return path(text, where)

        rendered_command = container.get("command")
        program = self.images(container["image"] + "#" + rendered_command[0] if rendered_command else container["image"])
        env = self._env(pod_name, rootfs, program, container, namespace, value_of, mapped)
        if rendered_command:  # the command replaces the image's entrypoint: its program, found in the image
            head = list(program.argv) + [value_of(expand(a, env), f"command[{i}]") for i, a in enumerate(rendered_command[1:], 1)]
        else:
            head = list(program.argv)
        args: List[str] = []
        rendered_args = [expand(str(a), env) for a in container.get("args", [])]
        for i, arg in enumerate(rendered_args):
            previous = rendered_args[i - 1] if i else ""
            if program.host_flag and previous == program.host_flag and arg in ("0.0.0.0", "::"):
                args.append("127.0.0.1")
                mapped.append(Mapped(f"args[{i}]", arg, "127.0.0.1", "host"))
            elif previous == "--port" and arg.isdigit() and int(arg) in ports:
                args.append(str(ports[int(arg)]))
                mapped.append(Mapped(f"args[{i}]", arg, str(ports[int(arg)]), "port"))
            else:
                args.append(value_of(arg, f"args[{i}]"))
        if program.add_host:
            args += ["--host", "127.0.0.1"]
            mapped.append(Mapped("args", "", "--host 127.0.0.1", "host"))
        if program.add_port:
            (first, *_) = ports
            args += [program.add_port, str(ports[first])]
            mapped.append(Mapped("args", "", f"{program.add_port} {ports[first]}", "port"))
        for cport, name in program.port_env.items():
            env[name] = str(ports[cport])
            mapped.append(Mapped(f"env {name}", str(cport), env[name], "port"))
        if program.host_env:
            env[program.host_env] = "127.0.0.1"
            mapped.append(Mapped(f"env {program.host_env}", "0.0.0.0", "127.0.0.1", "host"))
        if program.translate:
            args = program.translate(args)
        return head + args, env, mapped, ports

    def _env(
        self, pod_name: str, rootfs: Path, program: Program, container: Obj, namespace: str, value_of: Callable[[str, str], str], mapped: List[Mapped]
    ) -> Dict[str, str]:
        """The container's environment: the image's, then the container's own (values expanded, paths and Service
        addresses mapped, secrets from the decrypted Secrets)."""
        env: Dict[str, str] = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}
        for name, value in program.env.items():
            if name in program.image_paths:
                env[name] = str(rootfs / value.lstrip("/"))
                Path(env[name]).mkdir(parents=True, exist_ok=True)
                mapped.append(Mapped(f"image env {name}", value, env[name], "path"))
            else:
                env[name] = value_of(value, f"image env {name}")
        for item in container.get("env", []):
            name = item["name"]
            if "value" in item:
                value = expand(str(item["value"]), env)
                local, url_mapped = self.map_url(value, absent_ok=True)
                if url_mapped:
                    mapped.append(Mapped(f"env {name}", value, local, url_mapped.why))
                    env[name] = local
                else:
                    env[name] = value_of(value, f"env {name}")
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                secret = self.secrets.get((namespace, ref["name"])) or self.secrets.get(("", ref["name"]))
                data = (secret or {}).get("stringData") or {}
                if ref["key"] in data:
                    env[name] = str(data[ref["key"]])
                elif not ref.get("optional"):
                    raise KeyError(f"{pod_name}: env {name} needs Secret {ref['name']} key {ref['key']}, which the tree does not hold")
        return env

    def start(self, name: str, workload: Obj, *, extra_env: Optional[Mapping[str, str]] = None) -> Started:
        """Start the first container of a Deployment, StatefulSet or Job (in the background)."""
        pod_spec = workload["spec"]["template"]["spec"]
        namespace = workload["metadata"].get("namespace", "")
        container = pod_spec["containers"][0]
        argv, env, mapped, ports = self.command(name, pod_spec, container, namespace)
        env.update(extra_env or {})
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cwd = self.workdir_of(name, container)
        with open(log, "wb") as out:
            # its own session: stop() ends the process and anything it started
            process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        started = Started(name, process, log, argv, env, mapped, ports)
        self.started.append(started)
        return started

    def workdir_of(self, pod_name: str, container: Obj) -> Optional[Path]:
        """The image's WORKDIR in the pod's file system (None: the image names none)."""
        workdir = self.images(container["image"] + ("#" + container["command"][0] if container.get("command") else "")).workdir
        if not workdir:
            return None
        path = self.workdir / "pods" / pod_name / "rootfs" / workdir.lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run(self, name: str, pod_spec: Obj, container: Obj, namespace: str = "", timeout: float = 300, extra_env: Optional[Mapping[str, str]] = None):
        """Run one container to completion (a Job's or an init container)."""
        argv, env, mapped, _ = self.command(name, pod_spec, container, namespace)
        env.update(extra_env or {})
        cwd = self.workdir_of(name, container)
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, start_new_session=True)
        return proc, mapped

    def stop(self, timeout: float = 20) -> List[str]:
        """Stop every started process group; returns the names of any that had to be killed."""
        killed = []
        for started in self.started:
            if started.process.poll() is None:
                _signal(started.process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for started in self.started:
            try:
                started.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed.append(started.name)
                _signal(started.process, signal.SIGKILL)
                started.process.wait(timeout=10)
            _signal(started.process, signal.SIGKILL)  # whatever it left in its session
        return killed


def _signal(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def session_stats(session: int) -> List[List[str]]:
    """The /proc/<pid>/stat fields after the command name (state first) of each process of a session."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session:  # fields: state, ppid, pgrp, session, ...
                found.append(fields)
    return found


def session_alive(pid: int) -> bool:
    """Whether any process of the session that ``pid`` led still runs (a zombie does not)."""
    return any(fields[0] != "Z" for fields in session_stats(pid))


def python_program() -> Program:
    return Program([sys.executable])
