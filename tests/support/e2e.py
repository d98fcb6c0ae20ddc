# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The stack's data path on one machine, with the real programs, from what site.yml renders.

``Stack`` generates tiny random-weight GGUF models, serves them from the Hugging Face stand-in, renders the example
homelab with a catalog of those models, runs each llama.cpp pull Job's container (the collection's own download
code) and the server's init container, starts ``llama-server`` with each rendered Deployment's arguments and
LiteLLM with the rendered config and master key (``local_pods`` maps paths, host, ports and cluster DNS names to
this machine). The end-to-end test and the gateway benchmark both use it. ``start_open_webui`` adds what a person
uses: Open WebUI as rendered, in front of that LiteLLM, with the Qdrant stand-in (``qdrant.py``) as its vector store.

The llama.cpp images and the local ``llama-server`` must be the same llama.cpp release, the LiteLLM image and the
local proxy the same LiteLLM release, and the Open WebUI image and the local Open WebUI the same release:
``images()`` refuses to run a stand-in of another release.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from . import qdrant, sd_pod
from .example import EXAMPLE, ROOT
from .gguf_models import Shape, write_model
from .local_pods import Cluster, Mapped, Program, Started, python_program, session_alive
from .model_server import ModelServer
from .playbook import run_site
from .servers import EgressRecorder, wait_http
from .tree_checks import container_port, decrypt_secrets, load_objects

LLAMA_SERVER = Path(os.environ.get("LLAMA_SERVER_BIN") or ROOT / ".cache" / "llama-server" / "llama-server")
LITELLM = Path(os.environ.get("LITELLM_BIN") or ROOT / ".cache" / "venv-litellm" / "bin" / "litellm")
OPEN_WEBUI = Path(os.environ.get("OPEN_WEBUI_BIN") or ROOT / ".cache" / "venv-open-webui" / "bin" / "open-webui")
# where llama-server cannot be built: llama-cpp-python's own server (its [server] extra), in the VRAM benchmark's venv
LLAMA_CPP_PYTHON = Path(os.environ.get("LLAMA_CPP_PYTHON") or ROOT / ".cache" / "venv-bench" / "bin" / "python")
# the llama.cpp release each llama-cpp-python version vendors (its changelog names the commit)
VENDORED_RELEASE = {"0.3.36": "b11312"}
NAMESPACE = "ai"
# no chat template in a GGUF means llama.cpp guesses; a tiny model states its own, as real ones do
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
EOS = 2  # gguf_models' end-of-sequence token: requests bias it away to get exactly max_tokens
# KubeElasti scales down only once Prometheus was up for a whole cooldown: short, so the test can see it (default 900)
SCALE_TO_ZERO_COOLDOWN = 8
# the tiny models' tokenizer spends a token per byte (a space, "\u2581", is three): Open WebUI's 1000-character
# chunks would be some 1350 tokens, over what llama-server embeds in one batch (512); a real tokenizer makes them
# about 250. The inventory's own knob (open_webui_env) sets chunks that fit, as a user would for a small model.
OPEN_WEBUI_ENV = {"CHUNK_SIZE": "250", "CHUNK_OVERLAP": "25"}
# nothing may leave this machine: whatever tries goes through a "proxy" on a closed port of loopback
# Stable Diffusion's checkpoint, as small as a safetensors file gets (the ComfyUI stand-in only lists it): the
# catalog's, pulled by the rendered Job from the Hub stand-in into the model volume
CHECKPOINT_REPO, CHECKPOINT_FILE = "homelab-e2e/tiny-sd", "tiny-sd.safetensors"
_CHECKPOINT_HEADER = b'{"__metadata__":{"format":"pt"}}'
CHECKPOINT = len(_CHECKPOINT_HEADER).to_bytes(8, "little") + _CHECKPOINT_HEADER
NO_EGRESS = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"}
# what the Open WebUI image sets itself (its Dockerfile's ENV; WORKDIR /app/backend): the Deployment's env wins
OPEN_WEBUI_IMAGE_ENV = {
    "ENV": "prod",
    "PORT": "8080",
    "DOCKER": "true",
    "HOME": "/root",
    "USE_OLLAMA_DOCKER": "false",
    "USE_CUDA_DOCKER": "false",
    "OLLAMA_BASE_URL": "/ollama",
    "OPENAI_API_BASE_URL": "",
    "OPENAI_API_KEY": "",
    "WEBUI_SECRET_KEY": "",
    "SCARF_NO_ANALYTICS": "true",
    "DO_NOT_TRACK": "true",
    "ANONYMIZED_TELEMETRY": "false",
    "WHISPER_MODEL": "base",
    "WHISPER_MODEL_DIR": "/app/backend/data/cache/whisper/models",
    "RAG_EMBEDDING_MODEL": "sentence-transformers/all-MiniLM-L6-v2",
    "RAG_RERANKING_MODEL": "",
    "SENTENCE_TRANSFORMERS_HOME": "/app/backend/data/cache/embedding/models",
    "TIKTOKEN_ENCODING_NAME": "cl100k_base",
    "TIKTOKEN_CACHE_DIR": "/app/backend/data/cache/tiktoken",
    "HF_HOME": "/app/backend/data/cache/embedding/models",
}


@dataclass(frozen=True)
class TinyModel:
    """A catalog entry and the model file it points at."""

    name: str
    shape: Shape
    entry: Dict[str, Any]  # the catalog entry, less source (the stand-in's repo and file)
    repo: str
    filename: str
    pin_sha256: bool = False  # give the digest in the catalog as well as trusting the Hub's


# 8192 tokens a slot: room for Open WebUI's RAG prompt (its template and the retrieved chunks, some 3500 tokens at
# about a token a byte)
CHAT = TinyModel(
    "tiny-chat",
    Shape("tiny-chat", n_layer=2, n_embd=64, n_head=4, n_head_kv=2, n_ff=128, n_vocab=512, weights="q8_0", ctx_train=8192, chat_template=CHATML),
    {"context": 8192, "parallel": 2, "node": "strix-01", "scale_to_zero": True, "args": ["--flash-attn", "on"]},
    "homelab-e2e/tiny-chat-GGUF",
    "tiny-chat-Q8_0.gguf",
)
# a context of 2048: inputs longer than llama-server's default micro-batch of 512 tokens (embedding_args)
EMBED = TinyModel(
    "tiny-embed",
    Shape("tiny-embed", n_layer=2, n_embd=64, n_head=4, n_head_kv=4, n_ff=128, n_vocab=512, weights="f16", ctx_train=2048, pooling="last"),
    {"mode": "embedding", "context": 2048, "pooling": "last", "node": "gpu-amd-01"},
    "homelab-e2e/tiny-embed-GGUF",
    "tiny-embed-F16.gguf",
    pin_sha256=True,
)


def binary_release(llama_server: Path) -> str:
    """``b<N>`` of a llama-server build (``--version``: ``version: 0.5.0-dev (build N, commit C)``, older ``version: N (C)``)."""
    out = subprocess.run([str(llama_server), "--version"], capture_output=True, text=True, timeout=30, check=False)
    match = re.search(r"\(build (\d+)|version: (\d+) \(", out.stdout + out.stderr)
    if not match:
        raise RuntimeError(f"{llama_server} --version printed no build number: {(out.stdout + out.stderr)[-500:]}")
    return f"b{match.group(1) or match.group(2)}"


def package_release(program: Path, package: str) -> str:
    """The version of ``package`` in the venv whose bin/ holds ``program``."""
    venv = program.resolve().parent.parent
    found = sorted(venv.glob(f"lib/python*/site-packages/{package.replace('-', '_')}-*.dist-info"))
    if not found:
        raise RuntimeError(f"no {package} package next to {program}")
    return found[0].name.removesuffix(".dist-info").split("-")[1]


def litellm_release(litellm: Path) -> str:
    return package_release(litellm, "litellm")


def open_webui_release(open_webui: Path = OPEN_WEBUI) -> str:
    return package_release(open_webui, "open-webui")


def fallback_release(python: Path = LLAMA_CPP_PYTHON) -> Optional[str]:
    """The llama.cpp release of llama-cpp-python's server in ``python``'s environment, if it is there."""
    if not python.exists():
        return None
    out = subprocess.run(
        [str(python), "-c", "import llama_cpp, llama_cpp.server.app; print(llama_cpp.__version__)"], capture_output=True, text=True, timeout=120, check=False
    )
    version = out.stdout.strip()
    return VENDORED_RELEASE.get(version, f"(llama-cpp-python {version})") if out.returncode == 0 else None


# llama-server's arguments as llama-cpp-python's server spells them; None: it has no such setting
_FALLBACK_FLAGS = {
    "--host": "--host",
    "--port": "--port",
    "--model": "--model",
    "--alias": "--model_alias",
    "--ctx-size": "--n_ctx",
    "--n-gpu-layers": "--n_gpu_layers",
    "--parallel": None,  # it serves one request at a time
    "--batch-size": "--n_batch",
    "--ubatch-size": "--n_ubatch",
    # it has no pooling setting and pools as the GGUF declares: the tiny embedding model declares its catalog's
    "--pooling": None,
}
_FALLBACK_SWITCHES = {"--embeddings": ["--embedding", "true"], "--metrics": []}  # it has no /metrics


def llama_cpp_python_args(args: List[str]) -> List[str]:
    out: List[str] = []
    i = 0
    while i < len(args):
        flag = args[i]
        if flag in _FALLBACK_SWITCHES:
            out += _FALLBACK_SWITCHES[flag]
            i += 1
        elif flag == "--flash-attn":
            out += ["--flash_attn", "true" if args[i + 1] == "on" else "false"]
            i += 2
        elif flag in _FALLBACK_FLAGS:
            if _FALLBACK_FLAGS[flag]:
                out += [str(_FALLBACK_FLAGS[flag]), args[i + 1]]
            i += 2
        else:
            raise RuntimeError(f"llama-cpp-python's server has no equivalent of llama-server's {flag}")
    return out


def images(llama_server: Path = LLAMA_SERVER, litellm: Path = LITELLM, fallback: Path = LLAMA_CPP_PYTHON, open_webui: Path = OPEN_WEBUI):
    """The local program for each image the e2e path runs, checked to be the image's release."""
    server_release = binary_release(llama_server) if llama_server.exists() else fallback_release(fallback)
    if server_release is None:
        raise RuntimeError(f"no llama-server at {llama_server} and no llama-cpp-python server at {fallback}: `make integration` builds them")
    server = Program([str(llama_server)], host_flag="--host")
    if not llama_server.exists():
        server = Program([str(fallback), "-m", "llama_cpp.server"], host_flag="--host", translate=llama_cpp_python_args)
    proxy_release = litellm_release(litellm)

    def resolve(image: str) -> Program:
        image, _, command = image.partition("#")
        image = image.partition("@")[0]  # a digest pins the tag's content; the tag names the release
        repository, _, tag = image.rpartition(":")
        if repository == "ghcr.io/ggml-org/llama.cpp":
            release = tag.rsplit("-", 1)[-1]
            if release != server_release:
                raise RuntimeError(f"{image} runs llama.cpp {release}, the local llama-server is {server_release}: pin both to one release")
            # every variant (CUDA, Vulkan, SYCL, CPU) is the same server; here the CPU build runs it
            return server
        if repository.rsplit("/", 1)[-1] in ("litellm", "litellm-non_root", "litellm-database"):
            release = re.sub(r"^main-v|^v|-stable$|-nightly$", "", tag)  # main-v1.83.14-stable, 1.84.3, v1.104.2
            if release != proxy_release:
                raise RuntimeError(f"{image} runs LiteLLM {release}, the local proxy is {proxy_release}: pin both to one release")
            return Program([str(litellm)], add_host=True)
        if repository == "docker.io/library/python" and command == "python":
            # the pull code is standard library only: this machine's Python stands in for the image's 3.12
            return python_program()
        if repository == "ghcr.io/open-webui/open-webui":
            release = tag.removeprefix("v").split("-", 1)[0]  # v0.11.3, v0.11.3-cuda, ...
            if not open_webui.exists():
                raise RuntimeError(f"no Open WebUI at {open_webui}: `make integration` installs it (.cache/venv-open-webui)")
            if release != open_webui_release(open_webui):
                raise RuntimeError(f"{image} runs Open WebUI {release}, the local one is {open_webui_release(open_webui)}: pin both to one release")
            # the image's start.sh runs uvicorn on $HOST:$PORT; `open-webui serve` is the same app with flags
            return Program(
                [str(open_webui), "serve"], add_host=True, add_port="--port", env=OPEN_WEBUI_IMAGE_ENV, image_paths=("HOME",), workdir="/app/backend"
            )
        if repository in ("docker.io/qdrant/qdrant", "qdrant/qdrant"):
            # no Qdrant server here: the stand-in speaks its REST API as the image's release, from the image's WORKDIR
            # (its config keeps data in ./storage), port and address from the variables Qdrant reads them from
            return Program(
                [sys.executable, qdrant.__file__, "--version", qdrant.release_of(image)[1]],
                port_env={6333: "QDRANT__SERVICE__HTTP_PORT", 6334: "QDRANT__SERVICE__GRPC_PORT"},
                host_env="QDRANT__SERVICE__HOST",
                workdir="/qdrant",
            )
        raise RuntimeError(f"no local stand-in for image {image} (command {command or 'its entrypoint'})")

    return resolve


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wait_ready(url: str, timeout: float, started: Started) -> float:
    """Seconds until ``url`` answers (llama-server's /health answers 503 while it loads); a failure shows the log."""
    return wait_http(url, timeout, started.process, name=started.name, output=started.output)


@dataclass
class Stack:
    collections: Path
    age_key: Path
    workdir: Path
    models: Tuple[TinyModel, ...] = (CHAT, EMBED)
    llama_server: Path = LLAMA_SERVER
    litellm: Path = LITELLM
    fallback_python: Path = LLAMA_CPP_PYTHON
    hub: Optional[ModelServer] = None
    cluster: Optional[Cluster] = None
    tree: Optional[Path] = None
    files: Dict[str, Path] = field(default_factory=dict)  # model name -> generated file
    pulled: Dict[str, Path] = field(default_factory=dict)  # model name -> file the pull Job placed
    servers: Dict[str, Started] = field(default_factory=dict)  # model name -> llama-server
    gateway: Optional[Started] = None
    open_webui: Path = OPEN_WEBUI
    webui: Optional[Started] = None
    vector_store: Optional[Started] = None
    egress: Optional[EgressRecorder] = None  # what Open WebUI tried to reach outside this machine
    image_generation: Optional[sd_pod.SdPod] = None
    master_key: str = ""
    pull_mapped: Dict[str, List[Mapped]] = field(default_factory=dict)
    config_mapped: List[Mapped] = field(default_factory=list)
    timings: Dict[str, float] = field(default_factory=dict)

    # -- the steps, in order (start() runs them all) --

    def generate(self) -> None:
        (self.workdir / "hub").mkdir(parents=True, exist_ok=True)
        self.hub = ModelServer()
        self.hub.__enter__()
        for model in self.models:
            path = write_model(self.workdir / "hub" / model.filename, model.shape)
            self.files[model.name] = path
            self.hub.add_hf(model.repo, model.filename, path.read_bytes())
        self.hub.add_hf(CHECKPOINT_REPO, CHECKPOINT_FILE, CHECKPOINT)

    def catalog(self) -> List[Dict[str, Any]]:
        entries = []
        for model in self.models:
            entry = {"name": model.name, "backend": "llamacpp", "source": f"hf://{model.repo}/{model.filename}", **model.entry}
            if model.pin_sha256:
                entry["sha256"] = sha256_of(self.files[model.name])
            entries.append(entry)
        return entries

    def render(self) -> None:
        assert self.hub
        out = self.workdir / "render"
        begin = time.monotonic()
        run = run_site(
            self.collections,
            EXAMPLE,
            age_key=self.age_key,
            # the VRAM plan reads the tiny models' headers from the stand-in Hub, as it would from the real one
            extra_vars={
                "homelab_ai_render_dir": str(out),
                "homelab_ai_models": self.catalog(),
                "deliver_vram_fetch": True,
                "deliver_vram_cache_dir": str(self.workdir / "gguf-cache"),
                "llamacpp_scale_to_zero_cooldown": SCALE_TO_ZERO_COOLDOWN,
                "open_webui_env": OPEN_WEBUI_ENV,
                "stable_diffusion_checkpoints": [{"source": f"hf://{CHECKPOINT_REPO}/{CHECKPOINT_FILE}", "sha256": hashlib.sha256(CHECKPOINT).hexdigest()}],
                "stable_diffusion_model": CHECKPOINT_FILE,
            },
            env={"HF_ENDPOINT": self.hub.url},
        )
        self.timings["render"] = time.monotonic() - begin
        if run.rc != 0:
            raise RuntimeError(f"site.yml failed:\n{run.output[-4000:]}")
        self.tree = out / "homelab"
        objects = [obj for _, obj in load_objects(self.tree)]
        secrets = [obj for _, obj in decrypt_secrets(self.tree, str(self.age_key))]
        self.cluster = Cluster(objects, secrets, self.workdir / "node", images(self.llama_server, self.litellm, self.fallback_python, self.open_webui))
        (self.master_key,) = [s["stringData"]["master-key"] for s in secrets if s["metadata"]["name"] == "litellm"]

    def deployment_of(self, model: str) -> Dict[str, Any]:
        assert self.cluster
        (found,) = [d for d in self.cluster.of_kind("Deployment") if d["metadata"].get("annotations", {}).get("homelab.ai/model") == model]
        return found

    def pull(self) -> None:
        """Run each model's pull Job container, then the server's init container that waits for the file."""
        assert self.cluster and self.hub
        for model in self.models:
            (job,) = [j for j in self.cluster.of_kind("Job") if j["metadata"].get("annotations", {}).get("homelab.ai/model") == model.name]
            pod = job["spec"]["template"]["spec"]
            begin = time.monotonic()
            proc, mapped = self.cluster.run(job["metadata"]["name"], pod, pod["containers"][0], NAMESPACE, extra_env={"HF_ENDPOINT": self.hub.url})
            self.timings[f"pull {model.name}"] = time.monotonic() - begin
            if proc.returncode != 0:
                raise RuntimeError(f"the pull Job of {model.name} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
            self.pull_mapped[model.name] = [*mapped, Mapped("env HF_ENDPOINT", "(the Hub)", self.hub.url, "host")]
            claim = next(v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v)
            self.pulled[model.name] = self.cluster.workdir / "pvc" / claim / model.filename
            deployment = self.deployment_of(model.name)
            dep_pod = deployment["spec"]["template"]["spec"]
            for init in dep_pod.get("initContainers", []):
                proc, _ = self.cluster.run(deployment["metadata"]["name"], dep_pod, init, NAMESPACE, timeout=30)
                if proc.returncode != 0:
                    raise RuntimeError(f"init container {init['name']} of {model.name} failed:\n{proc.stdout}{proc.stderr}")

    def start_servers(self) -> None:
        assert self.cluster
        for model in self.models:
            deployment = self.deployment_of(model.name)
            begin = time.monotonic()
            started = self.cluster.start(deployment["metadata"]["name"], deployment)
            self.servers[model.name] = started
            pod = deployment["spec"]["template"]["spec"]
            probe = pod["containers"][0]["startupProbe"]["httpGet"]
            _, cport = container_port(pod, probe["port"]) or (None, 0)
            # llama-cpp-python's server has no /health: its model list answers once the model is loaded
            wait_ready(started.url(cport) + (probe["path"] if not self.fallback else "/v1/models"), 120, started)
            self.timings[f"start {model.name}"] = time.monotonic() - begin

    def start_gateway(self) -> None:
        assert self.cluster
        deployment = self.cluster.get("Deployment", "litellm", NAMESPACE)
        pod = deployment["spec"]["template"]["spec"]
        (config_volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
        folder = self.cluster.configmap_dir(config_volume["configMap"]["name"], NAMESPACE)
        config = yaml.safe_load((folder / "config.yaml").read_text())
        for entry in config["model_list"]:
            params = entry["litellm_params"]
            local, mapped = self.cluster.map_url(params["api_base"])
            if mapped:
                params["api_base"] = local
                self.config_mapped.append(mapped)
        (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        begin = time.monotonic()
        self.gateway = self.cluster.start("litellm", deployment, extra_env=NO_EGRESS)
        probe = pod["containers"][0]["readinessProbe"]["httpGet"]
        _, cport = container_port(pod, probe["port"]) or (None, 0)
        wait_ready(self.gateway.url(cport) + probe["path"], 180, self.gateway)
        self.timings["start litellm"] = time.monotonic() - begin

    def start_image_generation(self) -> sd_pod.SdPod:
        """Stable Diffusion as rendered: its pull Job fills the model volume from the Hub stand-in, then its pod runs
        (the ComfyUI stand-in behind the real nginx, ``sd_pod``) until its readiness probe sees the checkpoint. Start it
        before Open WebUI, whose address of it then maps to the pod's API port."""
        assert self.cluster and self.hub
        stem = CHECKPOINT_FILE.rsplit(".", 1)[0]
        (job,) = [j for j in self.cluster.of_kind("Job") if j["metadata"].get("annotations", {}).get("homelab.ai/model") == stem]
        pod = job["spec"]["template"]["spec"]
        begin = time.monotonic()
        proc, _ = self.cluster.run(job["metadata"]["name"], pod, pod["containers"][0], NAMESPACE, extra_env={"HF_ENDPOINT": self.hub.url})
        if proc.returncode != 0:
            raise RuntimeError(f"the checkpoint's pull Job failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        self.timings["pull checkpoint"] = time.monotonic() - begin
        deployment = self.cluster.get("Deployment", "stable-diffusion", NAMESPACE)
        claims = {
            v["persistentVolumeClaim"]["claimName"]: self.cluster.workdir / "pvc" / v["persistentVolumeClaim"]["claimName"]
            for v in deployment["spec"]["template"]["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        }
        secrets = {name: secret.get("stringData") or {} for (_, name), secret in self.cluster.secrets.items()}
        begin = time.monotonic()
        started = sd_pod.start(self.cluster.objects, secrets, self.workdir / "stable-diffusion", claims)
        self.image_generation = started
        # kube-proxy's view: the pod answers on its container ports (the proxy's); cluster.stop() ends both processes
        comfyui_process, nginx = started.processes
        mapped = [Mapped(where, rendered, local, "port") for where, rendered, local in started.mapped]
        self.cluster.started.append(Started("stable-diffusion-comfyui", comfyui_process, started.root / "comfyui.log", [], {}, [], {}))
        proxy_ports = {port: local for port, local in started.ports.items() if port != sd_pod.COMFYUI_PORT}
        self.cluster.started.append(Started("stable-diffusion", nginx, started.root / "nginx.log", [str(sd_pod.NGINX)], {}, mapped, proxy_ports))
        comfy = deployment["spec"]["template"]["spec"]["containers"][0]
        sd_pod.wait_probe(started, comfy["readinessProbe"], 30)
        self.timings["start stable-diffusion"] = time.monotonic() - begin
        return started

    def start_open_webui(self) -> Started:
        """Qdrant (the stand-in) and Open WebUI as rendered, in front of the running LiteLLM; each with a fresh volume."""
        assert self.cluster and self.gateway
        statefulset = self.cluster.get("StatefulSet", "qdrant", NAMESPACE)
        begin = time.monotonic()
        self.vector_store = self.cluster.start("qdrant", statefulset)
        self._wait_probe(self.vector_store, statefulset, "readinessProbe", 30)
        self.timings["start qdrant"] = time.monotonic() - begin
        deployment = self.cluster.get("Deployment", "open-webui", NAMESPACE)
        self.egress = EgressRecorder().__enter__()
        begin = time.monotonic()
        self.webui = self.cluster.start("open-webui", deployment, extra_env=self.egress.env())
        # the startup probe gives it 10 minutes; here the first start takes 12 to 16 s
        self._wait_probe(self.webui, deployment, "startupProbe", 180)
        self.timings["start open-webui"] = time.monotonic() - begin
        return self.webui

    def _wait_probe(self, started: Started, workload: Dict[str, Any], probe_name: str, timeout: float) -> None:
        pod = workload["spec"]["template"]["spec"]
        probe = pod["containers"][0][probe_name]["httpGet"]
        _, cport = container_port(pod, probe["port"]) or (None, 0)
        wait_ready(started.url(cport) + probe["path"], timeout, started)

    @property
    def webui_url(self) -> str:
        assert self.webui
        (port,) = self.webui.ports
        return self.webui.url(port)

    @property
    def qdrant_storage(self) -> Path:
        """The folder of Qdrant's volume, where the stand-in records what it got."""
        assert self.cluster
        claim = next(
            v["persistentVolumeClaim"]["claimName"]
            for v in self.cluster.get("StatefulSet", "qdrant", NAMESPACE)["spec"]["template"]["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        )
        return self.cluster.workdir / "pvc" / claim

    def start(self) -> Stack:
        try:
            self.generate()
            self.render()
            self.pull()
            self.start_servers()
            self.start_gateway()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> List[str]:
        killed = self.cluster.stop() if self.cluster else []
        for server in (self.hub, self.egress):
            if server:
                server.__exit__(None, None, None)
        self.hub = self.egress = None
        return killed

    def stop_checked(self) -> None:
        """Stop the stack after a module's tests; fail if a process exited while they ran, outlived SIGTERM or still runs."""
        started = self.cluster.started if self.cluster else []
        exited = [s.name for s in started if s.process.poll() is not None]
        pids = [s.process.pid for s in started]
        killed = self.stop()
        assert not exited, f"{exited} exited during the tests"
        assert not killed, f"{killed} did not stop on SIGTERM within 20 s"
        assert not [pid for pid in pids if session_alive(pid)], "a process the test started still runs"

    @property
    def fallback(self) -> str:
        """Why llama-cpp-python's server stands in for llama-server ("" when llama-server runs)."""
        if self.llama_server.exists():
            return ""
        return f"llama-server could not be built (no {self.llama_server}): llama-cpp-python's server runs instead, with translated arguments"

    # -- addresses --

    @property
    def gateway_url(self) -> str:
        assert self.gateway
        return self.gateway.url(4000) + "/v1"

    def server_url(self, model: str) -> str:
        started = self.servers[model]
        (port,) = started.ports
        return started.url(port) + "/v1"

    def litellm_config(self) -> Dict[str, Any]:
        assert self.tree
        configmap = yaml.safe_load((self.tree / "apps" / "litellm" / "configmap-litellm-config.yaml").read_text())
        return yaml.safe_load(configmap["data"]["config.yaml"])


def describe(stack: Stack) -> str:
    """What ran and what was mapped, for the test output."""
    if stack.fallback:
        lines = [f"FALLBACK: {stack.fallback}; llama.cpp {fallback_release(stack.fallback_python)}; LiteLLM {litellm_release(stack.litellm)}"]
    else:
        lines = [f"llama-server {binary_release(stack.llama_server)} ({stack.llama_server}); LiteLLM {litellm_release(stack.litellm)}"]
    for name, started in stack.servers.items():
        lines.append(f"{name}: {' '.join(started.argv)}")
        lines.extend(f"  {m.where}: {m.rendered} -> {m.local} ({m.why})" for m in started.mapped)
    if stack.gateway:
        lines.append(f"litellm: {' '.join(stack.gateway.argv)}")
        lines.extend(f"  {m.where}: {m.rendered} -> {m.local} ({m.why})" for m in stack.gateway.mapped + stack.config_mapped)
    for started in (stack.vector_store, stack.webui):
        if started:
            lines.append(f"{started.name}: {' '.join(started.argv)}")
            lines.extend(f"  {m.where}: {m.rendered} -> {m.local} ({m.why})" for m in started.mapped)
    lines.append("timings: " + json.dumps({k: round(v, 2) for k, v in stack.timings.items()}))
    return "\n".join(lines)
