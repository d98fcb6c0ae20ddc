#!/usr/bin/env python3
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""What the LiteLLM gateway costs: time to first token and tokens per second through LiteLLM against the same
requests sent straight to llama-server, in one run.

The stack is the end-to-end test's (tests/support/e2e.py): site.yml renders the example homelab with a catalog of
generated random-weight models, the pull Job's code fetches them from the Hugging Face stand-in, the real
llama-server and LiteLLM proxy run with the rendered arguments and config on loopback. Each request streams
``--tokens`` tokens (end-of-sequence biased away, so every answer has the same length) with greedy sampling;
direct and gateway requests alternate, so both see the same machine. Two models: the test's tiny one, where the
server is so fast that the gateway's own time per token shows, and a small one whose speed is closer to a real
model on a CPU.

    make bench-gateway         # or: .venv/bin/python benchmarks/gateway_overhead.py --write benchmarks/README-gateway.md
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.conftest  # noqa: E402, F401 - makes ansible_collections.homelab.ai importable from the checkout
from tests.support.age import make_age_key  # noqa: E402
from tests.support.e2e import CHAT, EOS, Stack, TinyModel, binary_release, litellm_release  # noqa: E402
from tests.support.gguf_models import Shape  # noqa: E402
from tests.support.local_pods import session_stats  # noqa: E402
from tests.support.playbook import install_collection  # noqa: E402

SMALL = TinyModel(
    "small-chat",
    Shape("small-chat", n_layer=8, n_embd=512, n_head=8, n_head_kv=4, n_ff=1408, n_vocab=32000, weights="q8_0", chat_template=CHAT.shape.chat_template),
    {"context": 2048, "node": "strix-01"},
    "homelab-e2e/small-chat-GGUF",
    "small-chat-Q8_0.gguf",
)


def stream(url: str, model: str, tokens: int, key: str = "") -> Tuple[float, float, int]:
    """(seconds to the first content token, seconds from it to the last, completion tokens) of one streamed chat."""
    parts = urlsplit(url)
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "Write a short story about a homelab."}],
            "max_tokens": tokens,
            "temperature": 0,
            "logit_bias": {str(EOS): -100},
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    start = time.perf_counter()
    conn.request("POST", parts.path + "/chat/completions", body=body, headers=headers)
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{url}: {response.status} {response.read()[:500]!r}")
    first = last = 0.0
    usage = 0
    for raw in response:
        line = raw.strip()
        if not line.startswith(b"data:") or line == b"data: [DONE]":
            continue
        chunk = json.loads(line[5:])
        if chunk.get("usage"):
            usage = chunk["usage"]["completion_tokens"]
        for choice in chunk.get("choices") or []:
            if (choice.get("delta") or {}).get("content"):
                last = time.perf_counter()
                first = first or last
    conn.close()
    return first - start, last - first, usage


def cpu_seconds(session: int) -> float:
    """CPU time (user + system) used so far by the processes of a session (the gateway and anything it started)."""
    return sum(int(fields[11]) + int(fields[12]) for fields in session_stats(session)) / os.sysconf("SC_CLK_TCK")


def measure(stack: Stack, model: str, tokens: int, runs: int, warmup: int) -> Dict[str, Dict[str, List[float]]]:
    assert stack.gateway
    paths = {"direct": (stack.server_url(model), ""), "gateway": (stack.gateway_url, stack.master_key)}
    results: Dict[str, Dict[str, List[float]]] = {name: {"ttft": [], "tps": [], "cpu": []} for name in paths}
    for i in range(warmup + runs):
        for name, (url, key) in paths.items():
            cpu = cpu_seconds(stack.gateway.process.pid)
            ttft, rest, usage = stream(url, model, tokens, key)
            cpu = cpu_seconds(stack.gateway.process.pid) - cpu
            if usage != tokens:
                raise RuntimeError(f"{name}: {usage} tokens, not {tokens}")
            if i >= warmup:
                results[name]["ttft"].append(ttft * 1000)
                results[name]["tps"].append((tokens - 1) / rest)
                results[name]["cpu"].append(cpu * 1000 / tokens)
    return results


def p90(values: List[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def table(results: Dict[str, Dict[str, Dict[str, List[float]]]], tokens: int, runs: int) -> str:
    lines = [
        f"Streamed chat completions of {tokens} tokens, greedy, {runs} of each after warm-up, direct and gateway alternating.",
        "",
        "| model | path | time to first token, median (p90) | tokens/s, median (p10) | gateway CPU per token |",
        "|---|---|---|---|---|",
    ]
    for model, by_path in results.items():
        for path, values in by_path.items():
            tps_p10 = statistics.quantiles(values["tps"], n=10)[0]
            lines.append(
                f"| {model} | {path} | {statistics.median(values['ttft']):.1f} ms ({p90(values['ttft']):.1f}) "
                f"| {statistics.median(values['tps']):.0f} ({tps_p10:.0f}) | {statistics.mean(values['cpu']):.2f} ms |"
            )
        direct, gateway = by_path["direct"], by_path["gateway"]
        d_tps, g_tps = statistics.median(direct["tps"]), statistics.median(gateway["tps"])
        lines.append(
            f"| {model} | **gateway cost** | **+{statistics.median(gateway['ttft']) - statistics.median(direct['ttft']):.1f} ms** "
            f"| **{(g_tps / d_tps - 1) * 100:+.1f} %** ({1000 / g_tps - 1000 / d_tps:+.2f} ms per token) "
            f"| **{statistics.mean(gateway['cpu']) - statistics.mean(direct['cpu']):.2f} ms** |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--write", type=Path, help="also write the results (markdown) to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        work = Path(tmp)
        collections = install_collection(work / "collection")
        age_key = work / "keys.txt"
        make_age_key(age_key)
        stack = Stack(collections, age_key, work / "stack", models=(CHAT, SMALL))
        stack.start()
        try:
            results = {model.name: measure(stack, model.name, args.tokens, args.runs, args.warmup) for model in (CHAT, SMALL)}
        finally:
            stack.stop()
    header = (
        f"llama-server {binary_release(stack.llama_server)} (CPU build), LiteLLM {litellm_release(stack.litellm)}, "
        f"{os.cpu_count()} CPUs ({platform.machine()}), both on this machine; "
        f"models: {CHAT.name} ({CHAT.shape.n_layer} layers x {CHAT.shape.n_embd}), {SMALL.name} ({SMALL.shape.n_layer} layers x {SMALL.shape.n_embd}, "
        f"{SMALL.shape.n_vocab} tokens, {SMALL.shape.weights})."
    )
    text = header + "\n\n" + table(results, args.tokens, args.runs) + "\n"
    print(text)
    if args.write:
        args.write.write_text("# Gateway cost (`benchmarks/gateway_overhead.py`)\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
