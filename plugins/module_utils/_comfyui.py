# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Image generation with ComfyUI: the workflow Open WebUI sends, where ComfyUI finds the models, what it is started with.

Open WebUI's ``comfyui`` engine posts a workflow in ComfyUI's API format and writes the request's values into the
nodes that ``COMFYUI_WORKFLOW_NODES`` names; without that mapping (configured by environment only, it is empty) every
picture is ComfyUI's placeholder. The workflow here is text to image with one checkpoint (SD 1.5, SDXL and their
fine-tunes load by ``CheckpointLoaderSimple``); the sampler settings suit SDXL base.

ComfyUI has no authentication of its own: it listens on the pod's loopback only, behind a proxy in the same pod
that checks Open WebUI's key and the web UI's password (roles/stable_diffusion/files/).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Sequence

from ._yaml import dump

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "FIXED_ARGS",
    "cli_args",
    "client_settings",
    "extra_model_paths",
    "fixed_arg",
    "server_settings",
    "workflow",
    "workflow_nodes",
]

# where ComfyUI listens inside the pod, and the file the role mounts for --extra-model-paths-config
PORT = 8188
MODEL_PATHS_FILE = "/etc/comfyui/extra_model_paths.yaml"
# the model types a pull Job may fill besides the checkpoints (ComfyUI's folder names)
MODEL_FOLDERS = ("checkpoints", "vae", "loras", "upscale_models", "embeddings", "controlnet", "clip", "unet", "diffusion_models", "text_encoders")
# what ComfyUI lists as a checkpoint (folder_paths' supported_pt_extensions)
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft")
# arguments the role sets: a second --listen would bind ComfyUI beside the proxy, past the key and the password
FIXED_ARGS = ("--listen", "--port", "--extra-model-paths-config", "--base-directory", "--enable-cors-header", "--tls-keyfile", "--tls-certfile")

# node ids of the workflow, and what Open WebUI writes into each
_SAMPLER, _CHECKPOINT, _LATENT, _POSITIVE, _NEGATIVE, _DECODE, _SAVE = "3", "4", "5", "6", "7", "8", "9"


def workflow(model: str, negative: str = "", steps: int = 30, cfg: float = 7.0, sampler: str = "dpmpp_2m", scheduler: str = "karras") -> Dict[str, Any]:
    """Text to image in ComfyUI's API format (node id -> class_type and inputs; ``[id, n]`` is output n of node id)."""
    return {
        _SAMPLER: {
            "class_type": "KSampler",
            "inputs": {
                "seed": 0,
                "steps": steps,
                "cfg": cfg,
                "sampler_name": sampler,
                "scheduler": scheduler,
                "denoise": 1.0,
                "model": [_CHECKPOINT, 0],
                "positive": [_POSITIVE, 0],
                "negative": [_NEGATIVE, 0],
                "latent_image": [_LATENT, 0],
            },
        },
        _CHECKPOINT: {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": model}},
        _LATENT: {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        _POSITIVE: {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": [_CHECKPOINT, 1]}},
        _NEGATIVE: {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": [_CHECKPOINT, 1]}},
        _DECODE: {"class_type": "VAEDecode", "inputs": {"samples": [_SAMPLER, 0], "vae": [_CHECKPOINT, 2]}},
        _SAVE: {"class_type": "SaveImage", "inputs": {"filename_prefix": "open-webui", "images": [_DECODE, 0]}},
    }


def workflow_nodes() -> List[Dict[str, Any]]:
    """``COMFYUI_WORKFLOW_NODES``: which node input takes each value of Open WebUI's request.

    No ``negative_prompt``: Open WebUI writes it even when the request has none, and ComfyUI then reads the text "None".
    """
    return [
        {"type": "prompt", "key": "text", "node_ids": [_POSITIVE]},
        {"type": "model", "key": "ckpt_name", "node_ids": [_CHECKPOINT]},
        {"type": "width", "key": "width", "node_ids": [_LATENT]},
        {"type": "height", "key": "height", "node_ids": [_LATENT]},
        {"type": "n", "key": "batch_size", "node_ids": [_LATENT]},
        {"type": "steps", "key": "steps", "node_ids": [_SAMPLER]},
        {"type": "seed", "key": "seed", "node_ids": [_SAMPLER]},
    ]


def workflow_json(model: str, negative: str = "") -> str:
    """``COMFYUI_WORKFLOW``: the workflow as the JSON text Open WebUI parses."""
    return json.dumps(workflow(model, negative), sort_keys=True)


def extra_model_paths(base: str, checkpoint_dir: str) -> Dict[str, Any]:
    """ComfyUI's extra_model_paths.yaml: the model volume, its checkpoints in ``checkpoint_dir`` and the other types in
    folders of their own names (what ComfyUI's own models/ holds), so that a model placed there is found."""
    folders: Dict[str, Any] = {"base_path": base}
    for folder in MODEL_FOLDERS:
        folders[folder] = checkpoint_dir if folder == "checkpoints" else folder
    return {"homelab": folders}


def cli_args(extra: Sequence[str]) -> str:
    """``CLI_ARGS`` of the image's start script (``main.py --listen --port 8188 $CLI_ARGS``, the last --listen wins).

    ComfyUI on the pod's loopback only; models from the volume; no custom nodes (the image's ComfyUI-Manager installs
    nodes for whoever reaches it and fetches lists from the internet at start) and no API nodes (cloud services).
    """
    fixed = ["--listen", "127.0.0.1", "--port", str(PORT), "--extra-model-paths-config", MODEL_PATHS_FILE, "--disable-all-custom-nodes", "--disable-api-nodes"]
    return " ".join([*fixed, *extra])


def fixed_arg(arg: Any) -> bool:
    """Whether an argument is one the role sets (the image's start script expands CLI_ARGS unquoted: the preflight
    keeps each argument to one word, _formats.command_word)."""
    return isinstance(arg, str) and arg.split("=", 1)[0] in FIXED_ARGS


# the probes run in the ComfyUI container (it listens on loopback, which kubelet's httpGet cannot reach); python3 is
# what the image starts ComfyUI with. Ready: the API answers and lists the checkpoint Open WebUI asks for (a pull Job
# may still be filling the volume). Alive: the API answers.
_READY = f"import json, sys, urllib.request as r; sys.exit(sys.argv[1] not in json.load(r.urlopen('http://127.0.0.1:{PORT}/models/checkpoints', timeout=5)))"
_ALIVE = f"import urllib.request as r; r.urlopen('http://127.0.0.1:{PORT}/prompt', timeout=5)"


def server_settings(model: str, checkpoint_dir: str, args: Sequence[str], models_mount: str = "/models") -> Dict[str, Any]:
    """What the ComfyUI container is started and probed with (roles/stable_diffusion/templates/objects.yml.j2)."""
    return {
        "port": PORT,
        "cli_args": cli_args(list(args)),
        "model_paths_file": MODEL_PATHS_FILE,
        "model_paths": dump(extra_model_paths(models_mount, checkpoint_dir)),
        "ready": ["python3", "-c", _READY, model],
        "alive": ["python3", "-c", _ALIVE],
    }


def client_settings(model: str) -> Dict[str, str]:
    """Open WebUI's ``COMFYUI_WORKFLOW`` and ``COMFYUI_WORKFLOW_NODES`` for ``model``, as the JSON texts it parses."""
    return {"workflow": workflow_json(model), "nodes": json.dumps(workflow_nodes())}
