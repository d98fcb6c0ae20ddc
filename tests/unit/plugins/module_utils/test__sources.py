from __future__ import annotations

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._sources import SourceError, parse_source


def test_hf_source_with_nested_path_and_revision():
    source = parse_source("hf://Qwen/Qwen3-Embedding-0.6B-GGUF/sub/dir/model-Q8_0.gguf@v1.0")
    assert (source.scheme, source.repo, source.path, source.revision) == ("hf", "Qwen/Qwen3-Embedding-0.6B-GGUF", "sub/dir/model-Q8_0.gguf", "v1.0")
    assert source.filename == "model-Q8_0.gguf"


def test_hf_source_defaults_to_main():
    assert parse_source("hf://org/repo/file.gguf").revision == "main"


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("ollama://llama3.2:3b", "llama3.2:3b"),
        ("ollama://llama3.2", "llama3.2:latest"),
        ("ollama://someone/mymodel:q4", "someone/mymodel:q4"),
        ("ollama://registry.example.org/team/model:1", "registry.example.org/team/model:1"),
        ("ollama://localhost:5000/model", "localhost:5000/library/model:latest"),
    ],
)
def test_ollama_sources_name_the_model_as_ollama_does(uri, name):
    assert parse_source(uri).ollama_name == name


def test_https_source():
    source = parse_source("https://models.example.org/path/sd_xl_base_1.0.safetensors")
    assert source.scheme == "https" and source.filename == "sd_xl_base_1.0.safetensors"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("hf://org/repo", "must name org/repo/path"),
        ("hf://org/repo/../etc/passwd", "'..' is not a file or folder name it can use"),
        ("hf://org/repo/file.gguf@", "revision after @ is empty"),
        ("http://example.org/model.gguf", "plain http"),
        ("s3://bucket/model.gguf", "unknown scheme 's3'"),
        ("ollama://Llama3:3b", "not a valid Ollama model name"),
        ("ollama://a/b/c/d", "must be ollama://"),
        ("https://example.org/", "must name a host and a file path"),
        ("llama3.2", "is not a model source"),
        (None, "is not a model source"),
    ],
)
def test_bad_sources_say_what_is_wrong(uri, message):
    with pytest.raises(SourceError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_source(uri)


@pytest.mark.parametrize(
    ("uri", "form", "what"),
    [
        ("https://huggingface.co/ORG/REPO/blob/main/FILE.gguf", "hf://ORG/REPO/FILE.gguf", "web page"),
        ("https://huggingface.co/Qwen/Qwen3-GGUF/blob/v1.0/sub/q8.gguf", "hf://Qwen/Qwen3-GGUF/sub/q8.gguf@v1.0", "web page"),
        ("https://huggingface.co/ORG/REPO/raw/main/FILE.gguf", "hf://ORG/REPO/FILE.gguf", "LFS pointer"),
    ],
)
def test_the_hubs_web_address_of_a_file_is_refused_with_its_hf_form(uri, form, what):
    with pytest.raises(SourceError) as refused:
        parse_source(uri)
    assert what in str(refused.value) and f"use {form} " in str(refused.value)
    assert parse_source(form).scheme == "hf"


def test_the_hubs_resolve_address_is_the_file_itself():
    assert parse_source("https://huggingface.co/ORG/REPO/resolve/main/FILE.gguf").scheme == "https"
