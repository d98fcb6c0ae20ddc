from __future__ import annotations

import json
import shlex

import pytest
import yaml

from ansible_collections.homelab.ai.plugins.module_utils._comfyui import (
    client_settings,
    extra_model_paths,
    fixed_arg,
    server_settings,
    workflow,
    workflow_nodes,
)
from tests.support.comfyui import Invalid, model_folders, node_classes, parse_args, validate

MODEL = "sd_xl_base_1.0.safetensors"


def apply_nodes(flow, nodes, model, prompt, width, height, n, steps, seed):
    """What Open WebUI 0.11.3's _apply_workflow_nodes writes (utils/images/comfyui.py), for the types mapped here."""
    values = {"prompt": prompt, "model": model, "width": width, "height": height, "n": n, "steps": steps, "seed": seed}
    for node in nodes:
        for node_id in node["node_ids"]:
            flow[node_id]["inputs"][node["key"]] = values[node["type"]]
    return flow


def test_the_workflow_is_one_comfyui_accepts_once_open_webui_filled_it():
    flow = json.loads(client_settings(MODEL)["workflow"])
    assert flow == workflow(MODEL)
    filled = apply_nodes(flow, json.loads(client_settings(MODEL)["nodes"]), MODEL, "a lighthouse at dusk", 1024, 768, 2, 25, 1234)
    assert validate(filled, node_classes([MODEL])) == ["9"]
    assert filled["6"]["inputs"]["text"] == "a lighthouse at dusk" and filled["5"]["inputs"] == {"width": 1024, "height": 768, "batch_size": 2}
    assert filled["3"]["inputs"]["steps"] == 25 and filled["3"]["inputs"]["seed"] == 1234


def test_every_mapped_node_and_key_exists_and_no_negative_prompt_is_mapped():
    flow = workflow(MODEL)
    for node in workflow_nodes():
        for node_id in node["node_ids"]:
            assert node["key"] in flow[node_id]["inputs"], node
    # Open WebUI writes a negative prompt it was not given as None, which ComfyUI reads as the text "None"
    assert "negative_prompt" not in {node["type"] for node in workflow_nodes()}


def test_a_checkpoint_comfyui_does_not_list_is_refused_as_comfyui_refuses_it():
    with pytest.raises(Invalid) as info:
        validate(workflow("other.safetensors"), node_classes([MODEL]))
    assert info.value.error["type"] == "prompt_outputs_failed_validation"
    assert info.value.node_errors["4"]["errors"][0]["type"] == "value_not_in_list"


def test_comfyui_is_started_on_loopback_with_the_model_paths_and_without_custom_nodes():
    settings = server_settings(MODEL, "checkpoints", ["--lowvram"])
    # the image's start script: main.py --listen --port 8188 $CLI_ARGS (word-split); argparse keeps the last --listen
    args = parse_args(["--listen", "--port", "8188", *shlex.split(settings["cli_args"])])
    assert args.listen == "127.0.0.1" and args.port == 8188
    assert args.extra_model_paths_config == [[settings["model_paths_file"]]]
    assert args.disable_all_custom_nodes and args.disable_api_nodes and args.lowvram
    assert settings["ready"][:2] == ["python3", "-c"] and settings["ready"][-1] == MODEL
    compile(settings["ready"][2], "ready", "exec")
    compile(settings["alive"][2], "alive", "exec")


def test_the_model_paths_point_every_folder_into_the_volume(tmp_path):
    config = tmp_path / "etc" / "extra_model_paths.yaml"
    config.parent.mkdir()
    config.write_text(server_settings(MODEL, "sd/ckpt", [])["model_paths"])
    assert yaml.safe_load(config.read_text()) == extra_model_paths("/models", "sd/ckpt")
    folders = model_folders(["/etc/extra_model_paths.yaml"], root=tmp_path)
    assert folders["checkpoints"] == [tmp_path / "models" / "sd" / "ckpt"]
    assert folders["loras"] == [tmp_path / "models" / "loras"]


@pytest.mark.parametrize("arg", ["--listen", "--listen=0.0.0.0", "--port", "--extra-model-paths-config", "--enable-cors-header"])
def test_the_arguments_the_role_sets_are_fixed(arg):
    assert fixed_arg(arg)


@pytest.mark.parametrize("arg", ["--lowvram", "--preview-method=auto", "--reserve-vram=2"])
def test_other_arguments_are_the_users(arg):
    assert not fixed_arg(arg)
