# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""A stand-in of ComfyUI's server: the HTTP and websocket API Open WebUI's ``comfyui`` engine and the probes use.

ComfyUI needs PyTorch and a GPU to generate, so the rendered Stable Diffusion pod's ``comfyui`` container runs this
program instead, started as the image starts ComfyUI (``main.py --listen --port 8188 $CLI_ARGS``: the same argparse
definitions for the flags the role passes, so an argument ComfyUI would refuse is refused here too). It is an aiohttp
server, as ComfyUI's is, and enforces what ComfyUI enforces on the way in:

- the origin check of ComfyUI's middleware: 403 when the Host is loopback and an Origin names another host;
- ``POST /prompt`` validates the workflow as ComfyUI's ``validate_prompt`` does, for the node classes a text-to-image
  workflow uses: known classes, required inputs, links to an existing node's output of the right type, whole
  numbers, numbers within the node's bounds, choices from the node's lists (the checkpoints are the files of the
  ``checkpoints`` folders of ``--extra-model-paths-config``), an output node; 400 with ``error`` and ``node_errors``;
- the websocket ``/ws?clientId=`` gets ``status``, ``execution_start``, ``executing`` per node, ``executed`` and the
  final ``executing`` with ``node: null`` for the prompts of its client, in ComfyUI's message shapes.

Generation makes a PNG of the latent's width and height per batch item; ``/history/{id}`` and ``/view`` return them.
Every request is appended to ``$COMFYUI_STANDIN_LOG`` (JSON lines) when that is set, with the headers it came with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import sys
import uuid
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml
from aiohttp import WSMsgType, web

Json = Dict[str, Any]
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")

# the node classes of a text-to-image workflow: required inputs (type, options) and output types
_INT64 = 0xFFFFFFFFFFFFFFFF
SAMPLERS = [
    "euler",
    "euler_ancestral",
    "heun",
    "dpm_2",
    "dpm_2_ancestral",
    "lms",
    "dpmpp_2s_ancestral",
    "dpmpp_sde",
    "dpmpp_2m",
    "dpmpp_2m_sde",
    "ddim",
    "uni_pc",
]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta"]


def node_classes(checkpoints: List[str]) -> Dict[str, Json]:
    return {
        "CheckpointLoaderSimple": {"required": {"ckpt_name": (checkpoints, {})}, "output": ["MODEL", "CLIP", "VAE"]},
        "CLIPTextEncode": {"required": {"text": ("STRING", {"multiline": True}), "clip": ("CLIP", {})}, "output": ["CONDITIONING"]},
        "EmptyLatentImage": {
            "required": {
                "width": ("INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
                "height": ("INT", {"default": 512, "min": 16, "max": 16384, "step": 8}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
            },
            "output": ["LATENT"],
        },
        "KSampler": {
            "required": {
                "model": ("MODEL", {}),
                "seed": ("INT", {"default": 0, "min": 0, "max": _INT64}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
                "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}),
                "sampler_name": (SAMPLERS, {}),
                "scheduler": (SCHEDULERS, {}),
                "positive": ("CONDITIONING", {}),
                "negative": ("CONDITIONING", {}),
                "latent_image": ("LATENT", {}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0}),
            },
            "output": ["LATENT"],
        },
        "VAEDecode": {"required": {"samples": ("LATENT", {}), "vae": ("VAE", {})}, "output": ["IMAGE"]},
        "SaveImage": {"required": {"images": ("IMAGE", {}), "filename_prefix": ("STRING", {"default": "ComfyUI"})}, "output": [], "output_node": True},
    }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """ComfyUI's own definitions (comfy/cli_args.py) of the flags the role passes; any other flag is an error."""
    parser = argparse.ArgumentParser(prog="main.py")
    parser.add_argument("--listen", type=str, default="127.0.0.1", metavar="IP", nargs="?", const="0.0.0.0,::")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--extra-model-paths-config", type=str, default=None, metavar="PATH", nargs="+", action="append")
    parser.add_argument("--disable-all-custom-nodes", action="store_true")
    parser.add_argument("--disable-api-nodes", action="store_true")
    parser.add_argument("--lowvram", action="store_true")
    parser.add_argument("--output-directory", type=str, default=None)
    return parser.parse_args(list(argv))


def model_folders(configs: Sequence[str], root: Path = Path("/")) -> Dict[str, List[Path]]:
    """What ComfyUI's load_extra_path_config adds: folder name -> directories (``root`` prefixes absolute paths)."""
    folders: Dict[str, List[Path]] = {}
    for config_path in configs:
        config = yaml.safe_load((root / config_path.lstrip("/")).read_text()) or {}
        for conf in config.values():
            if not conf:
                continue
            conf = dict(conf)
            base = conf.pop("base_path", None)
            conf.pop("is_default", None)
            for folder, paths in conf.items():
                for line in str(paths).split("\n"):
                    if line:
                        full = os.path.normpath(os.path.join(base, line) if base else line)
                        folders.setdefault(folder, []).append(root / full.lstrip("/"))
    return folders


def png(width: int, height: int, rgb: Tuple[int, int, int] = (40, 90, 160)) -> bytes:
    """A PNG of one colour: what a picture of that size looks like to its receiver."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


class Invalid(Exception):
    def __init__(self, error: Json, node_errors: Json) -> None:
        super().__init__(error.get("message", ""))
        self.error, self.node_errors = error, node_errors


def validate(prompt: Any, classes: Dict[str, Json]) -> List[str]:
    """The output nodes of a valid workflow; else Invalid with ComfyUI's error shapes."""
    if not isinstance(prompt, dict):
        raise Invalid({"type": "invalid_prompt", "message": "Cannot execute because the prompt is not a dictionary", "details": "", "extra_info": {}}, {})
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            message = f"Cannot execute because a node is missing the class_type property.: Node ID '#{node_id}'"
            raise Invalid({"type": "invalid_prompt", "message": message, "details": "", "extra_info": {}}, {})
        if node["class_type"] not in classes:
            message = f"Cannot execute because node {node['class_type']} does not exist.: Node ID '#{node_id}'"
            raise Invalid({"type": "invalid_prompt", "message": message, "details": "", "extra_info": {}}, {})
    outputs = [node_id for node_id, node in prompt.items() if classes[node["class_type"]].get("output_node")]
    if not outputs:
        raise Invalid({"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "", "extra_info": {}}, {})
    node_errors: Json = {}
    for node_id, node in prompt.items():
        errors = _node_errors(prompt, node, classes)
        if errors:
            node_errors[node_id] = {"errors": errors, "dependent_outputs": outputs, "class_type": node["class_type"]}
    if node_errors:
        raise Invalid({"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}}, node_errors)
    return outputs


def _error(kind: str, message: str, details: str, name: str) -> Json:
    return {"type": kind, "message": message, "details": details, "extra_info": {"input_name": name}}


def _node_errors(prompt: Json, node: Json, classes: Dict[str, Json]) -> List[Json]:
    errors: List[Json] = []
    inputs = node.get("inputs") or {}
    for name, (kind, options) in classes[node["class_type"]]["required"].items():
        if name not in inputs:
            errors.append(_error("required_input_missing", "Required input is missing", name, name))
            continue
        value = inputs[name]
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
            source = prompt.get(value[0])
            produced = classes[source["class_type"]]["output"] if source else []
            if source is None or not isinstance(value[1], int) or value[1] >= len(produced) or produced[value[1]] != kind:
                got = produced[value[1]] if source and isinstance(value[1], int) and value[1] < len(produced) else None
                details = f"{name}, received_type({got}) mismatch input_type({kind})"
                errors.append(_error("return_type_mismatch", "Return type mismatch between linked nodes", details, name))
            continue
        try:
            if kind == "INT":
                value = int(value)
            elif kind == "FLOAT":
                value = float(value)
            elif kind == "STRING":
                value = str(value)
        except (TypeError, ValueError):
            errors.append(_error("invalid_input_type", f"Failed to convert an input value to a {kind} value", f"{name}, {value}", name))
            continue
        if "min" in options and value < options["min"]:
            errors.append(_error("value_smaller_than_min", f"Value {value} smaller than min of {options['min']}", name, name))
        if "max" in options and value > options["max"]:
            errors.append(_error("value_bigger_than_max", f"Value {value} bigger than max of {options['max']}", name, name))
        if isinstance(kind, list) and value not in kind:
            errors.append(_error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {kind}", name))
    return errors


class ComfyUI:
    def __init__(self, folders: Dict[str, List[Path]], output: Path, log: Optional[Path] = None) -> None:
        self.folders, self.output, self.log = folders, output, log
        self.history: Dict[str, Json] = {}
        self.sockets: Dict[str, web.WebSocketResponse] = {}
        self.counter = 0
        self.number = 0
        self.app = web.Application(middlewares=[self.record, self.origin_only])
        self.app.add_routes(
            [
                web.get("/ws", self.websocket),
                web.get("/prompt", self.queue_info),
                web.post("/prompt", self.post_prompt),
                web.get("/history/{prompt_id}", self.get_history),
                web.get("/view", self.view),
                web.get("/object_info", self.object_info),
                web.get("/models/{folder}", self.models),
                web.get("/system_stats", self.system_stats),
            ]
        )

    def checkpoints(self) -> List[str]:
        found = set()
        for directory in self.folders.get("checkpoints", []):
            if directory.is_dir():
                found.update(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())
        return sorted(found)

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if self.log:
            entry = {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": {
                    key: value for key, value in request.headers.items() if key.lower() in ("authorization", "origin", "host", "user-agent", "upgrade")
                },
                "status": response.status,
                "body": await request.json() if request.method == "POST" and request.body_exists else None,  # aiohttp keeps what was read
            }
            with open(self.log, "a") as out:
                out.write(json.dumps(entry) + "\n")
        return response

    @web.middleware
    async def origin_only(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """ComfyUI's create_origin_only_middleware: a loopback Host with an Origin of another host is refused."""
        host = request.headers.get("Host", "")
        origin = request.headers.get("Origin")
        host_name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        if origin and host_name in LOOPBACK:
            origin_host = origin.split("://", 1)[-1].rstrip("/")
            if origin_host != host:
                return web.Response(status=403)
        return await handler(request)

    async def queue_info(self, request: web.Request) -> web.Response:
        return web.json_response({"exec_info": {"queue_remaining": 0}})

    async def system_stats(self, request: web.Request) -> web.Response:
        return web.json_response({"system": {"os": "posix", "comfyui_version": "stand-in"}, "devices": []})

    async def object_info(self, request: web.Request) -> web.Response:
        info = {}
        for name, spec in node_classes(self.checkpoints()).items():
            required = {key: [kind, options] for key, (kind, options) in spec["required"].items()}
            info[name] = {"input": {"required": required}, "output": spec["output"], "name": name, "output_node": bool(spec.get("output_node"))}
        return web.json_response(info)

    async def models(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder == "checkpoints":
            return web.json_response(self.checkpoints())
        if folder not in self.folders:
            return web.Response(status=404)
        return web.json_response([])

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        self.sockets[sid] = ws
        try:
            await ws.send_json({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": sid}})
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.sockets.pop(sid, None)
        return ws

    async def post_prompt(self, request: web.Request) -> web.Response:
        body = await request.json()
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if prompt is None:
            return web.json_response(
                {"error": {"type": "no_prompt", "message": "No prompt provided", "details": "", "extra_info": {}}, "node_errors": {}}, status=400
            )
        try:
            outputs = validate(prompt, node_classes(self.checkpoints()))
        except Invalid as invalid:
            return web.json_response({"error": invalid.error, "node_errors": invalid.node_errors}, status=400)
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        self.number += 1
        asyncio.get_running_loop().create_task(self.execute(prompt_id, prompt, outputs, body.get("client_id")))
        return web.json_response({"prompt_id": prompt_id, "number": self.number, "node_errors": {}})

    async def execute(self, prompt_id: str, prompt: Json, outputs: List[str], client: Optional[str]) -> None:
        async def send(kind: str, data: Json) -> None:
            ws = self.sockets.get(client or "")
            if ws is not None and not ws.closed:
                await ws.send_json({"type": kind, "data": data})

        await send("execution_start", {"prompt_id": prompt_id})
        results: Json = {}
        for node_id, node in prompt.items():
            await send("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id})
            if node_id in outputs:
                images = self.save(prompt, node)
                results[node_id] = {"images": images}
                await send("executed", {"node": node_id, "display_node": node_id, "output": results[node_id], "prompt_id": prompt_id})
        self.history[prompt_id] = {
            "prompt": [self.number, prompt_id, prompt, {"client_id": client}, outputs],
            "outputs": results,
            "status": {"status_str": "success", "completed": True, "messages": []},
        }
        await send("execution_success", {"prompt_id": prompt_id})
        await send("executing", {"node": None, "prompt_id": prompt_id})

    def save(self, prompt: Json, node: Json) -> List[Json]:
        """The pictures of a SaveImage node: one per batch item, of the latent's size (followed up the links)."""
        latent = prompt[node["inputs"]["images"][0]]
        while latent["class_type"] != "EmptyLatentImage":
            linked = [
                value
                for value in latent["inputs"].values()
                if isinstance(value, list) and len(value) == 2 and prompt[value[0]]["class_type"] in ("KSampler", "VAEDecode", "EmptyLatentImage")
            ]
            latent = prompt[linked[0][0]]
        size = latent["inputs"]
        images = []
        for _ in range(int(size["batch_size"])):
            self.counter += 1
            name = f"{node['inputs']['filename_prefix']}_{self.counter:05d}_.png"
            (self.output / name).write_bytes(png(int(size["width"]), int(size["height"])))
            images.append({"filename": name, "subfolder": "", "type": "output"})
        return images

    async def get_history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        return web.json_response({prompt_id: self.history[prompt_id]} if prompt_id in self.history else {})

    async def view(self, request: web.Request) -> web.StreamResponse:
        name = request.query.get("filename", "")
        if request.query.get("type", "output") != "output" or "/" in name or name.startswith(".") or not (self.output / name).is_file():
            return web.Response(status=404)
        return web.Response(body=(self.output / name).read_bytes(), content_type="image/png")


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    root = Path(os.environ.get("COMFYUI_STANDIN_ROOT", "/"))  # where the pod's absolute paths are on this machine
    folders = model_folders([path for group in args.extra_model_paths_config or [] for path in group], root)
    output = Path(args.output_directory or "output")
    output.mkdir(parents=True, exist_ok=True)
    log = os.environ.get("COMFYUI_STANDIN_LOG")
    comfy = ComfyUI(folders, output, Path(log) if log else None)
    host = args.listen.split(",")[0]
    print(f"ComfyUI stand-in on {host}:{args.port}, checkpoints {comfy.checkpoints()}", flush=True)
    web.run_app(comfy.app, host=host, port=args.port, print=None)


if __name__ == "__main__":
    main()
