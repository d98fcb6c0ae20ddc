# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""How fast the model pull is, beside huggingface_hub's hf_hub_download and curl, in one run.

    .venv/bin/python benchmarks/pull_speed.py [--size 2Gi] [--dest DIR] [--write benchmarks/README-pull.md]

A file of --size is served by tests/support/model_server.py (the Hub's resolve protocol, a CDN on another port) in
a process of its own, once unthrottled and once with a per-connection cap (--cap, 25 MB/s: a CDN's per-stream
limit). Measured in the same run, as references:

- sha256 alone (hashlib over memory);
- the loopback-plus-sha256 limit: one connection read into memory and hashed, nothing written (the most a
  verified download can reach here without a disk);
- the same plus writing the file to --dest (the limit once the destination's write speed counts).

The pull runs as the Job runs it: ``python -S -E -m homelab_ai_pull._pull`` from the ConfigMap's files (standard
library only), with its peak RSS. huggingface_hub runs from the bench venv (requirements/bench-pull.lock, --hf-python);
curl with ``-o FILE`` followed by ``sha256sum`` (what verifying by hand takes). Targets: throttled >= 0.85 x
connections x cap; unthrottled >= 0.8 x the loopback-plus-sha256 limit; peak memory independent of the size.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tests.conftest  # noqa: E402, F401 - makes ansible_collections.homelab.ai importable from the checkout
from ansible_collections.homelab.ai.plugins.module_utils._pull_job import code_files  # noqa: E402

MB = 1e6


def size_arg(text: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def make_file(path: Path, size: int) -> str:
    """Random data (incompressible), hashed while written."""
    digest = hashlib.sha256()
    block = os.urandom(4 << 20)
    with open(path, "wb") as handle:
        left = size
        while left:
            chunk = block[: min(len(block), left)]
            handle.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
            block = block[1:] + block[:1] if left else block  # blocks differ from each other
    return digest.hexdigest()


class Server:
    def __init__(self, path: Path, sha256: str, throttle: Optional[float]):
        cmd = [sys.executable, "-m", "tests.support.model_server", str(path), "--sha256", sha256]
        if throttle:
            cmd += ["--throttle", str(throttle)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        info = json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]
        self.endpoint = info["endpoint"]
        self.name = path.name

    @property
    def file_url(self) -> str:
        return f"{self.endpoint}/files/{self.name}"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def timed(cmd: List[str], env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None) -> Dict[str, Any]:
    """Run a command in a wrapper that reports its children's peak RSS."""
    wrapper = (
        "import resource, subprocess, sys, time, json; t = time.monotonic(); "
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT).returncode; "
        "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "print(json.dumps({'rc': rc, 'seconds': time.monotonic() - t, 'rss_kib': u.ru_maxrss, 'cpu': u.ru_utime + u.ru_stime}))"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, env=env, cwd=cwd, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"{cmd[:3]} failed with {result['rc']}")
    return result


def loopback_sha256(server: Server, dest: Optional[Path]) -> float:
    """One connection, read and hash (and write, when dest is given): the simplest verified download."""
    host, port = server.endpoint.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port))
    started = time.monotonic()
    conn.request("GET", f"/files/{server.name}")
    resp = conn.getresponse()
    digest = hashlib.sha256()
    total = 0
    out = open(dest, "wb") if dest else None  # noqa: SIM115
    while True:
        data = resp.read1(1 << 20)
        if not data:
            break
        digest.update(data)
        if out:
            out.write(data)
        total += len(data)
    if out:
        out.close()
    seconds = time.monotonic() - started
    conn.close()
    return total / seconds


def run_pull(code: Path, server: Server, dest: Path, connections: int, part_size: int) -> Dict[str, Any]:
    spec = {"source": f"hf://bench/files/{server.name}", "dest": str(dest), "endpoint": server.endpoint, "connections": connections, "part_size": part_size}
    cmd = [sys.executable, "-S", "-E", "-m", "homelab_ai_pull._pull", "--spec", json.dumps(spec), "--progress-interval", "3600"]
    return timed(cmd, cwd=code)


def run_hf(hf_python: str, server: Server, dest: Path) -> Dict[str, Any]:
    env = {**os.environ, "HF_ENDPOINT": server.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    code = "import sys; from huggingface_hub import hf_hub_download; hf_hub_download('bench/files', sys.argv[1], cache_dir=sys.argv[2])"
    return timed([hf_python, "-c", code, server.name, str(dest)], env=env)


def run_curl(server: Server, dest: Path) -> Dict[str, Any]:
    target = dest / server.name
    curl = timed(["curl", "-sSf", "-o", str(target), server.file_url])
    check = timed(["sha256sum", str(target)])
    seconds = curl["seconds"] + check["seconds"]
    return {"seconds": curl["seconds"], "verified_seconds": seconds, "rss_kib": curl["rss_kib"], "cpu": curl["cpu"], "verified_cpu": curl["cpu"] + check["cpu"]}


def sha256_speed() -> float:
    data = os.urandom(256 << 20)
    started = time.monotonic()
    hashlib.sha256(data).hexdigest()
    return len(data) / (time.monotonic() - started)


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=size_arg, default=size_arg("2Gi"))
    parser.add_argument("--small", type=size_arg, default=size_arg("256Mi"), help="a second size, to show memory does not grow with size")
    parser.add_argument("--cap", type=float, default=25e6, help="bytes/s per connection when throttled")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--part-size", type=size_arg, default=size_arg("16Mi"))
    parser.add_argument("--dest", type=Path, default=None, help="where downloads land (default: a temporary directory beside the checkout)")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "bench", help="where the served file is made")
    parser.add_argument("--hf-python", default=str(ROOT / ".cache" / "venv-bench-pull" / "bin" / "python"))
    parser.add_argument("--skip-throttled-references", action="store_true", help="skip hf_hub_download and curl throttled (about 3 minutes)")
    parser.add_argument("--write", type=Path, default=None, help="write the table into this markdown file")
    args = parser.parse_args()

    work = fresh(args.work)
    dest_root = args.dest or Path(tempfile.mkdtemp(prefix="pull-bench-", dir=ROOT / ".cache"))
    code = work / "code"
    (code / "homelab_ai_pull").mkdir(parents=True)
    for name, text in code_files().items():
        (code / "homelab_ai_pull" / name).write_text(text)
    big, small = work / "model.gguf", work / "small.gguf"
    print(f"making {args.size} and {args.small} byte files ...", flush=True)
    big_sha, small_sha = make_file(big, args.size), make_file(small, args.small)
    has_hf = os.path.exists(args.hf_python)
    rows: List[Dict[str, Any]] = []
    refs: Dict[str, float] = {"sha256 alone (hashlib, memory)": sha256_speed()}
    load = os.getloadavg()[0]

    def row(tool: str, mode: str, mbps: float, rss: Optional[int] = None, note: str = "", cpu: float = 0.0, size: int = args.size) -> None:
        rows.append(
            {
                "tool": tool,
                "mode": mode,
                "MB/s": round(mbps / MB, 1),
                "peak RSS MiB": round(rss / 1024, 1) if rss else None,
                "CPU s/GiB": round(cpu / (size / 2**30), 2) if cpu else None,
                "note": note,
            }
        )
        print(rows[-1], flush=True)

    fast = Server(big, big_sha, None)
    slow = Server(big, big_sha, args.cap)
    small_server = Server(small, small_sha, None)
    try:
        refs["loopback + sha256, 1 connection, no write"] = loopback_sha256(fast, None)
        refs["loopback + sha256 + write to dest, 1 connection"] = loopback_sha256(fast, fresh(dest_root / "ref") / "x")
        limit = refs["loopback + sha256, 1 connection, no write"]
        shutil.rmtree(dest_root / "ref")
        capped = f"{args.cap / MB:g} MB/s per connection"
        for label, server, size in (("unthrottled", fast, args.size), ("unthrottled", small_server, args.small), (capped, slow, args.size)):
            result = run_pull(code, server, fresh(dest_root / "pull"), args.connections, args.part_size)
            note = f"{size / 2**20:.0f} MiB, {args.connections} connections x {args.part_size >> 20} MiB parts, verified"
            row("homelab.ai model_pull", label, size / result["seconds"], result["rss_kib"], note, result["cpu"], size)
        shutil.rmtree(dest_root / "pull")
        for label, server in (("unthrottled", fast), (f"{args.cap / MB:g} MB/s per connection", slow)):
            if label != "unthrottled" and args.skip_throttled_references:
                continue
            if has_hf:
                result = run_hf(args.hf_python, server, fresh(dest_root / "hf"))
                note = "1 connection, sha256 checked after the download"
                row("huggingface_hub hf_hub_download", label, args.size / result["seconds"], result["rss_kib"], note, result["cpu"])
            result = run_curl(server, fresh(dest_root / "curl"))
            row("curl -o", label, args.size / result["seconds"], result["rss_kib"], "1 connection, not verified", result["cpu"])
            row("curl -o, then sha256sum", label, args.size / result["verified_seconds"], None, "verified by a second read", result["verified_cpu"])
        shutil.rmtree(dest_root / "hf", ignore_errors=True)
        shutil.rmtree(dest_root / "curl", ignore_errors=True)
    finally:
        for server in (fast, slow, small_server):
            server.close()
        if not args.dest:
            shutil.rmtree(dest_root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    unthrottled = next(r for r in rows if r["tool"].startswith("homelab") and r["mode"] == "unthrottled")
    throttled = next(r for r in rows if r["tool"].startswith("homelab") and r["mode"] != "unthrottled")
    small_row = [r for r in rows if r["tool"].startswith("homelab") and r["mode"] == "unthrottled"][1]
    target_throttled = 0.85 * args.connections * args.cap / MB
    target_unthrottled = 0.8 * limit / MB
    disk_limit = refs["loopback + sha256 + write to dest, 1 connection"] / MB
    checks = [
        f"throttled: {throttled['MB/s']} MB/s vs target 0.85 x {args.connections} x {args.cap / MB:g} = {target_throttled:.0f} MB/s: "
        + ("met" if throttled["MB/s"] >= target_throttled else "NOT met"),
        f"unthrottled: {unthrottled['MB/s']} MB/s vs target 0.8 x loopback+sha256 {limit / MB:.0f} = {target_unthrottled:.0f} MB/s: "
        + ("met" if unthrottled["MB/s"] >= target_unthrottled else "NOT met")
        + f" (with the destination's writes: 1-connection reference {disk_limit:.0f} MB/s, {unthrottled['MB/s'] / disk_limit:.2f} x)",
        f"peak RSS: {small_row['peak RSS MiB']} MiB for {args.small >> 20} MiB, {unthrottled['peak RSS MiB']} MiB for {args.size >> 20} MiB",
    ]
    lines = [
        "| tool | server | MB/s | peak RSS MiB | CPU s/GiB | note |",
        "| --- | --- | ---: | ---: | ---: | --- |",
        *[f"| {r['tool']} | {r['mode']} | {r['MB/s']} | {r['peak RSS MiB'] or ''} | {r['CPU s/GiB'] or ''} | {r['note']} |" for r in rows],
        "",
        "| reference, measured in the same run | MB/s |",
        "| --- | ---: |",
        *[f"| {name} | {value / MB:.0f} |" for name, value in refs.items()],
        "",
        *[f"- {c}" for c in checks],
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {load:.1f} at the start; destination {dest_root}.",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    if args.write:
        text = args.write.read_text() if args.write.exists() else ""
        begin, end = "<!-- pull_speed:begin -->", "<!-- pull_speed:end -->"
        block = f"{begin}\n{table}\n{end}"
        keep = begin in text and end in text
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :] if keep else text.rstrip() + "\n\n" + block + "\n"
        args.write.write_text(text)


if __name__ == "__main__":
    main()
