# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The rendered Stable Diffusion pod on this machine: the ComfyUI stand-in (``comfyui.py``) behind the real nginx.

The proxy container runs what its image runs: the nginx image's entrypoint writes each ``*.template`` of
``/etc/nginx/templates`` to ``/etc/nginx/conf.d`` with ``envsubst`` given only the variables of the container's
environment that match ``NGINX_ENVSUBST_FILTER`` (as its ``20-envsubst-on-templates.sh`` does), then starts nginx,
whose ``nginx.conf`` includes ``conf.d/*.conf`` in its ``http`` block and keeps its pid and temporary files in
``/tmp``. Here Debian's nginx and envsubst do the same (requirements/nginx.debian).

What cannot be the same on one machine is changed and recorded (``mapped``), nothing else: the pod's ports (8080
and 8081 of the proxy, 8188 of ComfyUI on the pod's loopback) become free ports of this machine's loopback, and the
pod's absolute paths (the ConfigMaps, the model volume) a folder.
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
from typing import Any, Dict, List, Mapping, Tuple

from . import comfyui
from .example import ROOT
from .servers import free_port, wait_http, wait_port

NGINX = Path(os.environ.get("NGINX_BIN") or ROOT / ".cache" / "nginx" / "nginx")
ENVSUBST = NGINX.parent / "envsubst"
COMFYUI_PORT = 8188
# the parts of the nginx image's own nginx.conf that the pod's configuration relies on (nginx-unprivileged: pid and
# temporary files in /tmp, conf.d included in http); error log to stderr, as the image links it
NGINX_CONF = """worker_processes 1;
error_log stderr notice;
pid {tmp}/nginx.pid;
{user}
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {tmp}/client_temp;
    proxy_temp_path {tmp}/proxy_temp;
    fastcgi_temp_path {tmp}/fastcgi_temp;
    uwsgi_temp_path {tmp}/uwsgi_temp;
    scgi_temp_path {tmp}/scgi_temp;
    access_log {tmp}/access.log;
    include conf.d/*.conf;
}}
"""


def _container(deployment: Mapping[str, Any], name: str) -> Dict[str, Any]:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def container_env(container: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]]) -> Dict[str, str]:
    """The container's environment as the kubelet gives it (values, and secretKeyRef from the decrypted Secrets)."""
    env: Dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    return env


def envsubst_templates(templates: Mapping[str, str], env: Mapping[str, str], out: Path) -> None:
    """The nginx image's 20-envsubst-on-templates.sh: each NAME.template becomes NAME, with only the defined variables
    that match NGINX_ENVSUBST_FILTER substituted (nginx's own $variables stay)."""
    pattern = re.compile(env.get("NGINX_ENVSUBST_FILTER", ""))
    defined = " ".join(f"${{{name}}}" for name in sorted(env) if pattern.search(name))
    out.mkdir(parents=True, exist_ok=True)
    for name, text in templates.items():
        if not name.endswith(".template"):
            continue
        result = subprocess.run([str(ENVSUBST), defined], input=text, capture_output=True, text=True, env=dict(env), check=True)
        (out / name[: -len(".template")]).write_text(result.stdout)


@dataclass
class SdPod:
    root: Path
    api_url: str = ""
    ui_url: str = ""
    comfyui_url: str = ""
    log: Path = field(init=False)
    mapped: List[Tuple[str, str, str]] = field(default_factory=list)  # (where, rendered, local)
    processes: List[subprocess.Popen] = field(default_factory=list)  # ComfyUI, nginx: each in a session of its own
    ports: Dict[int, int] = field(default_factory=dict)  # the pod's port -> this machine's

    def __post_init__(self) -> None:
        self.log = self.root / "comfyui-requests.jsonl"

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def requests(self) -> List[Dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


def start(objects: List[Dict[str, Any]], secrets: Mapping[str, Mapping[str, str]], root: Path, claims: Mapping[str, Path]) -> SdPod:
    """Start the pod of the rendered ``stable-diffusion`` Deployment, its volume claims the folders ``claims`` names
    (where the pull Jobs put the checkpoints). Stop it with ``SdPod.stop``."""
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    deployment = by_name[("Deployment", "stable-diffusion")]
    pod = SdPod(root)
    ports = pod.ports
    ports.update({8080: free_port(), 8081: free_port(), COMFYUI_PORT: free_port()})
    try:
        # the pod's file system: its ConfigMap mounts, its volume claims (links to their folders), emptyDirs
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        comfy = _container(deployment, "comfyui")
        for mount in comfy["volumeMounts"]:
            volume = volumes[mount["name"]]
            where = root / "pod" / mount["mountPath"].lstrip("/")
            if "persistentVolumeClaim" in volume:
                where.parent.mkdir(parents=True, exist_ok=True)
                where.symlink_to(claims[volume["persistentVolumeClaim"]["claimName"]])
                continue
            where.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                for key, text in by_name[("ConfigMap", volume["configMap"]["name"])]["data"].items():
                    (where / key).write_text(text)

        # ComfyUI, as the image's start script runs it: main.py --listen --port 8188 $CLI_ARGS (word-split)
        args = ["--listen", "--port", str(COMFYUI_PORT), *_cli(comfy).split()]
        local = [str(ports[COMFYUI_PORT]) if (i > 0 and args[i - 1] == "--port") else arg for i, arg in enumerate(args)]
        pod.mapped.append(("comfyui CLI_ARGS --port", str(COMFYUI_PORT), str(ports[COMFYUI_PORT])))
        (root / "comfyui").mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **container_env(comfy, secrets),
            "COMFYUI_STANDIN_ROOT": str(root / "pod"),
            "COMFYUI_STANDIN_LOG": str(pod.log),
        }
        with open(root / "comfyui.log", "w") as out:
            pod.processes.append(
                subprocess.Popen(
                    [sys.executable, comfyui.__file__, *local], cwd=root / "comfyui", env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        pod.comfyui_url = f"http://127.0.0.1:{ports[COMFYUI_PORT]}"

        # the proxy: the image's entrypoint (envsubst of the templates), then nginx
        proxy = _container(deployment, "proxy")
        proxy_env = container_env(proxy, secrets)
        templates = by_name[("ConfigMap", volumes["proxy-templates"]["configMap"]["name"])]["data"]
        conf_d = root / "nginx" / "conf.d"
        envsubst_templates(templates, proxy_env, conf_d)
        for name in os.listdir(conf_d):
            text = (conf_d / name).read_text()
            for rendered, local_text in (
                ("listen 8080;", f"listen 127.0.0.1:{ports[8080]};"),
                ("listen 8081;", f"listen 127.0.0.1:{ports[8081]};"),
                (f"127.0.0.1:{COMFYUI_PORT}", f"127.0.0.1:{ports[COMFYUI_PORT]}"),
            ):
                if rendered in text:
                    text = text.replace(rendered, local_text)
                    pod.mapped.append((f"conf.d/{name}", rendered, local_text))
            (conf_d / name).write_text(text)
        tmp = root / "nginx" / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        # workers of a root master run as nobody, who cannot read pytest's private folders: the image runs as one user
        user = "user root root;" if os.geteuid() == 0 else ""
        (root / "nginx" / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, user=user))
        command = [str(NGINX), "-e", "stderr", "-p", str(root / "nginx"), "-c", str(root / "nginx" / "nginx.conf"), "-g", "daemon off;"]
        with open(root / "nginx.log", "w") as out:
            pod.processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        pod.api_url = f"http://127.0.0.1:{ports[8080]}"
        pod.ui_url = f"http://127.0.0.1:{ports[8081]}"
        wait_http(f"{pod.comfyui_url}/prompt", 30, pod.processes[0])
        wait_port(ports[8080], pod.processes[1], name="nginx")
        return pod
    except BaseException:
        pod.stop()
        raise


def exec_probe(pod: SdPod, probe: Mapping[str, Any]) -> int:
    """The exit status of an exec probe of the ComfyUI container (python3 there, this Python here; its port mapped)."""
    command = list(probe["exec"]["command"])
    assert command[:2] == ["python3", "-c"], command
    code = command[2].replace(f"127.0.0.1:{COMFYUI_PORT}", f"127.0.0.1:{pod.ports[COMFYUI_PORT]}")
    return subprocess.run([sys.executable, "-c", code, *command[3:]], capture_output=True, timeout=probe.get("timeoutSeconds", 10), check=False).returncode


def wait_probe(pod: SdPod, probe: Mapping[str, Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while exec_probe(pod, probe) != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"the probe {probe['exec']['command'][2:]} failed for {timeout} s")
        time.sleep(0.5)


def _cli(container: Mapping[str, Any]) -> str:
    return next(item["value"] for item in container["env"] if item["name"] == "CLI_ARGS")
