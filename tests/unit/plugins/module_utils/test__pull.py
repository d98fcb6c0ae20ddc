"""Model pulls against a local Hub / registry / CDN with faults: after every fault, never a wrong file at the
target path, and a later run completes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.homelab.ai.plugins.module_utils import _download
from ansible_collections.homelab.ai.plugins.module_utils._download import DiskFullError, DownloadError, RemoteError
from ansible_collections.homelab.ai.plugins.module_utils._problems import InputError
from ansible_collections.homelab.ai.plugins.module_utils._pull import PullRequest, pull
from tests.support.example import ROOT
from tests.support.model_server import ModelServer, tls_certificate

SIZE = 3 * 1024 * 1024 + 12345  # not a multiple of the part size
PART = 256 * 1024
REPO = "org/model-GGUF"
URI = f"hf://{REPO}/model-Q4_K_M.gguf"
TOKEN = "hf_secret_token_value"


@pytest.fixture(scope="module")
def data():
    return os.urandom(SIZE)


@pytest.fixture
def server(data):
    with ModelServer(token=TOKEN) as srv:
        srv.add_hf(REPO, "model-Q4_K_M.gguf", data)
        srv.add_hf(REPO, "config.json", b'{"a": 1}\n', lfs=False)
        yield srv


def request(server, dest, **kw):
    args = {
        "source": URI,
        "dest": str(dest),
        "endpoint": server.url,
        "token": TOKEN,
        "connections": 4,
        "part_size": PART,
        "retries": 3,
        "timeout": 2.0,
        "backoff": 0.01,
        "checkpoint": 0.05,
        **kw,
    }
    return PullRequest(**args)


def listing(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def assert_no_wrong_file(dest, data):
    target = Path(dest) / "model-Q4_K_M.gguf"
    assert not target.exists() or target.read_bytes() == data


# --- the normal path ---------------------------------------------------------------------------------------


def test_pull_downloads_in_parallel_verifies_and_records(server, data, tmp_path):
    result = pull(request(server, tmp_path))
    target = tmp_path / "model-Q4_K_M.gguf"
    assert target.read_bytes() == data
    assert result.changed and result.action == "downloaded"
    assert (result.size, result.sha256, result.bytes_transferred) == (SIZE, hashlib.sha256(data).hexdigest(), SIZE)
    assert result.revision == "0123456789abcdef0123456789abcdef01234567"
    assert result.seconds > 0 and result.throughput > 0
    ranges = [r["range"] for r in server.requests("cdn", "GET")]
    assert len(ranges) == -(-SIZE // PART) and all(r.startswith("bytes=") for r in ranges)
    assert listing(tmp_path) == [".homelab-pull/model-Q4_K_M.gguf.verified.json", "model-Q4_K_M.gguf"]


def test_the_token_goes_to_the_hub_never_to_the_cdn(server, tmp_path):
    server.gated.add(REPO)
    pull(request(server, tmp_path))
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in server.requests("origin"))
    assert server.requests("cdn") and all(r["authorization"] is None for r in server.requests("cdn"))


def test_a_second_run_is_unchanged_without_network_or_hashing(server, tmp_path, monkeypatch):
    pull(request(server, tmp_path))
    before = len(server.log)
    monkeypatch.setattr("ansible_collections.homelab.ai.plugins.module_utils._pull.file_sha256", lambda path: pytest.fail("re-hashed"))
    result = pull(request(server, tmp_path))
    assert (result.changed, result.action, result.bytes_transferred) == (False, "unchanged", 0)
    assert result.sha256 == hashlib.sha256((tmp_path / "model-Q4_K_M.gguf").read_bytes()).hexdigest()
    assert len(server.log) == before


def test_verify_rehashes_on_request_and_a_changed_file_is_replaced(server, data, tmp_path):
    pull(request(server, tmp_path))
    result = pull(request(server, tmp_path, verify=True))
    assert (result.changed, result.action) == (False, "verified")
    target = tmp_path / "model-Q4_K_M.gguf"
    target.write_bytes(b"x" + data[1:])  # same size, new mtime: the record no longer vouches for it
    result = pull(request(server, tmp_path))
    assert (result.changed, result.action) == (True, "downloaded")
    assert target.read_bytes() == data


def test_a_file_already_there_without_record_is_hashed_once_and_adopted(server, data, tmp_path):
    (tmp_path / "model-Q4_K_M.gguf").write_bytes(data)
    result = pull(request(server, tmp_path))
    assert (result.changed, result.action, result.bytes_transferred) == (False, "verified", 0)
    assert not server.requests("cdn")
    assert pull(request(server, tmp_path)).action == "unchanged"


def test_check_mode_says_what_and_how_big_and_writes_nothing(server, tmp_path):
    result = pull(request(server, tmp_path), check_mode=True)
    assert (result.changed, result.action, result.size, result.bytes_to_transfer) == (True, "would download", SIZE, SIZE)
    assert list(tmp_path.iterdir()) == []
    assert not server.requests("cdn")


def test_latest_checks_the_hub_and_fetches_a_new_commit(server, tmp_path):
    pull(request(server, tmp_path))
    result = pull(request(server, tmp_path, state="latest"))
    assert (result.changed, result.action) == (False, "unchanged")
    assert [r["method"] for r in server.log[-1:]] == ["HEAD"]
    newer = os.urandom(1000)
    server.add_hf(REPO, "model-Q4_K_M.gguf", newer, commit="fedcba9876543210fedcba9876543210fedcba98")
    assert pull(request(server, tmp_path)).action == "unchanged"  # present: what is there stays
    result = pull(request(server, tmp_path, state="latest"))
    assert (result.changed, result.revision) == (True, "fedcba9876543210fedcba9876543210fedcba98")
    assert (tmp_path / "model-Q4_K_M.gguf").read_bytes() == newer


def test_absent_removes_the_file_and_its_record(server, tmp_path):
    pull(request(server, tmp_path))
    assert pull(request(server, tmp_path, state="absent"), check_mode=True).action == "would remove"
    assert (tmp_path / "model-Q4_K_M.gguf").exists()
    result = pull(request(server, tmp_path, state="absent"))
    assert (result.changed, result.action) == (True, "removed")
    assert listing(tmp_path) == []
    assert pull(request(server, tmp_path, state="absent")).changed is False


def test_a_small_git_file_is_fetched_whole(server, tmp_path):
    result = pull(request(server, tmp_path, source=f"hf://{REPO}/config.json"))
    assert (tmp_path / "config.json").read_bytes() == b'{"a": 1}\n'
    assert result.changed and not server.requests("cdn")


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return tls_certificate(str(tmp_path_factory.mktemp("tls")))


def test_a_plain_https_url_with_and_without_sha256(tls, tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", tls[0])
    body = os.urandom(700_000)
    with ModelServer(tls=tls) as srv:
        blob = srv.add_file("sd_xl_base_1.0.safetensors", body)
        url = f"{srv.url}/files/sd_xl_base_1.0.safetensors"
        with pytest.raises(DownloadError, match="sha256 mismatch"):
            pull(PullRequest(source=url, dest=str(tmp_path), sha256="ab" * 32, part_size=PART))
        assert listing(tmp_path) == []
        result = pull(PullRequest(source=url, dest=str(tmp_path), sha256=blob.sha256, part_size=PART))
        assert (result.changed, result.sha256) == (True, blob.sha256)
        assert (tmp_path / "sd_xl_base_1.0.safetensors").read_bytes() == body
        other = tmp_path / "other"
        result = pull(PullRequest(source=url, dest=str(other), part_size=PART))
        assert result.sha256 == blob.sha256  # no sha256 given: computed, returned, recorded
        assert pull(PullRequest(source=url, dest=str(other), part_size=PART)).action == "unchanged"
    monkeypatch.setenv("SSL_CERT_FILE", os.devnull)
    with ModelServer(tls=tls) as srv:  # an unknown certificate is refused
        srv.add_file("x.bin", b"x")
        with pytest.raises(RemoteError, match="did not answer"):
            pull(PullRequest(source=f"{srv.url}/files/x.bin", dest=str(tmp_path / "x"), retries=0))


# --- faults: never a wrong file at the target, and the next run completes ----------------------------------


@pytest.mark.parametrize(
    ("fault", "kw"),
    [
        ("truncate", {"offset": 1000, "times": 3}),
        ("status", {"status": 500, "after": 4, "times": 2}),  # 500s in mid-stream
        ("status", {"status": 503, "times": 1}),
        ("stall", {"offset": 5000, "seconds": 3, "times": 1}),
        ("416", {"times": 1}),
        ("expire", {"times": 2}),  # the CDN's signed link expires: resolved again at the same commit
    ],
)
def test_transient_faults_are_retried_within_the_run(server, data, tmp_path, fault, kw):
    server.fault(fault, **kw)
    result = pull(request(server, tmp_path, timeout=0.5))
    assert (tmp_path / "model-Q4_K_M.gguf").read_bytes() == data
    assert result.changed and result.sha256 == hashlib.sha256(data).hexdigest()
    assert server.faults[0].hits >= 1


def test_a_server_without_range_support_gets_one_plain_stream(server, data, tmp_path):
    server.fault("no_range", times=None)
    result = pull(request(server, tmp_path))
    assert (tmp_path / "model-Q4_K_M.gguf").read_bytes() == data and result.changed
    assert server.requests("cdn", "GET")[-1]["range"] is None


def test_a_corrupted_byte_never_reaches_the_target(server, data, tmp_path):
    server.fault("corrupt", offset=SIZE // 2)
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        pull(request(server, tmp_path))
    assert listing(tmp_path) == []  # the wrong bytes are gone, staging included
    result = pull(request(server, tmp_path))
    assert (tmp_path / "model-Q4_K_M.gguf").read_bytes() == data and result.bytes_transferred == SIZE


def test_a_wrong_size_is_refused(server, data, tmp_path):
    server.fault("wrong_size", delta=1000)
    with pytest.raises(DownloadError, match=r"not the .* announced"):
        pull(request(server, tmp_path))
    assert_no_wrong_file(tmp_path, data)
    assert not (tmp_path / "model-Q4_K_M.gguf").exists()
    assert pull(request(server, tmp_path)).changed
    assert (tmp_path / "model-Q4_K_M.gguf").read_bytes() == data


def test_persistent_failure_keeps_what_arrived_and_the_next_run_resumes(server, data, tmp_path):
    server.fault("status", status=502, after=6, times=None)
    with pytest.raises(DownloadError, match="run again to resume"):
        pull(request(server, tmp_path, retries=2))
    assert not (tmp_path / "model-Q4_K_M.gguf").exists()
    assert (tmp_path / ".homelab-pull" / "model-Q4_K_M.gguf.state.json").exists()
    server.faults.clear()
    result = pull(request(server, tmp_path))
    assert (tmp_path / "model-Q4_K_M.gguf").read_bytes() == data
    assert result.action == "resumed" and 0 < result.bytes_transferred <= SIZE - 6 * PART + PART


def test_a_stalled_connection_is_dropped_and_retried(server, data, tmp_path):
    server.fault("stall", offset=10, seconds=30, times=1)
    started = time.monotonic()
    pull(request(server, tmp_path, timeout=0.5))
    assert time.monotonic() - started < 10
    assert (tmp_path / "model-Q4_K_M.gguf").read_bytes() == data


def test_a_trickling_connection_counts_as_stalled(server, data, tmp_path, monkeypatch):
    server.throttle = 80_000.0  # bytes/s per connection: never silent for the timeout, but below min_speed
    started = time.monotonic()
    with pytest.raises(DownloadError, match="stalled"):
        pull(request(server, tmp_path, timeout=0.5, min_speed=400_000, retries=1, connections=2))
    assert time.monotonic() - started < 10
    server.throttle = None
    assert pull(request(server, tmp_path)).changed
    assert (tmp_path / "model-Q4_K_M.gguf").read_bytes() == data


# --- refusals: clear errors, nothing written ---------------------------------------------------------------


def test_a_gated_repo_without_token_names_the_fix(server, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    server.gated.add(REPO)
    with pytest.raises(RemoteError, match="accept the model's conditions") as info:
        pull(request(server, tmp_path, token=None))
    assert TOKEN not in str(info.value)
    with pytest.raises(RemoteError, match="token given was refused"):
        pull(request(server, tmp_path, token="hf_wrong"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert pull(request(server, tmp_path, token=None)).changed


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("hf://org/nope/x.gguf", "no repository org/nope"),
        (f"hf://{REPO}/missing.gguf", "has no file 'missing.gguf'"),
        (f"hf://{REPO}/model-Q4_K_M.gguf@v9", "has no revision 'v9'"),
    ],
)
def test_missing_things_are_named(server, tmp_path, source, message):
    with pytest.raises(RemoteError, match=message):
        pull(request(server, tmp_path, source=source))
    assert list(tmp_path.iterdir()) == [tmp_path / ".homelab-pull"] or list(tmp_path.iterdir()) == []


def test_a_catalog_sha256_that_disagrees_with_the_hub_stops_before_downloading(server, tmp_path):
    with pytest.raises(DownloadError, match="the sha256 given is 0000"):
        pull(request(server, tmp_path, sha256="0" * 64))
    assert not server.requests("cdn")


def test_bad_input_lists_every_problem_before_anything_is_written(tmp_path):
    req = PullRequest(source="s3://bucket/x", dest=str(tmp_path), sha256="abc", connections=0, part_size=10, filename="../x")
    with pytest.raises(InputError) as info:
        pull(req)
    text = str(info.value)
    for where in ("source", "sha256", "connections", "part_size", "filename"):
        assert f"- {where}:" in text
    assert list(tmp_path.iterdir()) == []


# --- the disk ----------------------------------------------------------------------------------------------


def test_too_little_space_is_said_before_downloading(server, tmp_path, monkeypatch):
    real = os.statvfs

    class Full:
        def __init__(self, path):
            stat = real(path)
            self.f_frsize, self.f_bavail = stat.f_frsize, 10

    monkeypatch.setattr(_download.os, "statvfs", Full)
    with pytest.raises(DiskFullError, match=r"needs 3\.0 MiB"):
        pull(request(server, tmp_path))
    assert listing(tmp_path) == [] and not server.requests("cdn")


def test_a_disk_that_fills_up_during_the_download_leaves_nothing(server, data, tmp_path, monkeypatch):
    real = os.pwrite
    written = [0]

    def pwrite(fd, chunk, offset):
        written[0] += len(chunk)
        if written[0] > SIZE // 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, chunk, offset)

    monkeypatch.setattr(_download.os, "pwrite", pwrite)
    with pytest.raises(DiskFullError, match="not enough space"):
        pull(request(server, tmp_path))
    assert listing(tmp_path) == []
    monkeypatch.setattr(_download.os, "pwrite", real)
    assert pull(request(server, tmp_path)).changed


@pytest.mark.skipif(os.geteuid() != 0 or not sys.platform.startswith("linux"), reason="mounting a small tmpfs needs root")
def test_a_really_full_filesystem(server, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=False, capture_output=True).returncode:
        pytest.skip("tmpfs cannot be mounted here")
    try:
        with pytest.raises(DiskFullError, match="not enough space"):
            pull(request(server, mnt))
        assert not (mnt / "model-Q4_K_M.gguf").exists() and not (mnt / ".homelab-pull" / "model-Q4_K_M.gguf.part").exists()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# --- processes: kill -9, two at once, the Job's entry point -----------------------------------------------


def job_package(tmp_path):
    """The module_utils files the pull Job's ConfigMap carries, as the package the container imports."""
    from ansible_collections.homelab.ai.plugins.module_utils._pull_job import code_files

    package = tmp_path / "code" / "homelab_ai_pull"
    package.mkdir(parents=True)
    for name, text in code_files().items():
        (package / name).write_text(text)
    return package.parent


def run_job(code_dir, spec, **kw):
    # -S -E: no site-packages, no PYTHON* variables: the standard library only, as in the stock image
    cmd = [sys.executable, "-S", "-E", "-m", "homelab_ai_pull._pull", "--spec", json.dumps(spec), "--progress-interval", "0.2"]
    return subprocess.Popen(cmd, cwd=code_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def spec_for(server, dest, **kw):
    return {"source": URI, "dest": str(dest), "endpoint": server.url, "connections": 4, "part_size": PART, "checkpoint": 0.1, "timeout": 5.0, **kw}


def test_the_job_entry_point_runs_on_the_standard_library_alone_and_reports_progress(server, data, tmp_path):
    code = job_package(tmp_path)
    server.throttle = 1_000_000.0
    proc = run_job(code, spec_for(server, tmp_path / "models"))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "%" in out and "MB/s" in out and "ETA" in out
    result = json.loads(out.strip().splitlines()[-1].split(" ", 1)[1])
    assert result["action"] == "downloaded" and result["size"] == SIZE
    assert (tmp_path / "models" / "model-Q4_K_M.gguf").read_bytes() == data


def test_the_job_reports_failure_with_a_nonzero_exit(server, tmp_path):
    code = job_package(tmp_path)
    proc = run_job(code, spec_for(server, tmp_path / "models", source=f"hf://{REPO}/missing.gguf"))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "ERROR:" in out and "has no file" in out


def test_kill_9_mid_download_resumes_with_only_the_unfinished_parts(server, data, tmp_path):
    code = job_package(tmp_path)
    server.throttle = 400_000.0  # 4 connections x 0.4 MB/s: about 2 s for the file
    proc = run_job(code, spec_for(server, tmp_path / "models"))
    state = tmp_path / "models" / ".homelab-pull" / "model-Q4_K_M.gguf.state.json"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if state.exists() and sum(p[2] for p in json.loads(state.read_text())["parts"]) > SIZE // 3:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    recorded = sum(p[2] for p in json.loads(state.read_text())["parts"])
    assert 0 < recorded < SIZE
    assert not (tmp_path / "models" / "model-Q4_K_M.gguf").exists()
    server.throttle = None
    result = pull(request(server, tmp_path / "models"))
    assert result.action == "resumed" and result.bytes_transferred <= SIZE - recorded
    assert (tmp_path / "models" / "model-Q4_K_M.gguf").read_bytes() == data


def test_two_runs_at_once_do_not_corrupt_the_target(server, data, tmp_path):
    code = job_package(tmp_path)
    server.throttle = 2_000_000.0
    procs = [run_job(code, spec_for(server, tmp_path / "models")) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    actions = sorted(json.loads(o.strip().splitlines()[-1].split(" ", 1)[1])["action"] for o in outs)
    assert actions == ["downloaded", "unchanged"]
    assert (tmp_path / "models" / "model-Q4_K_M.gguf").read_bytes() == data
    assert server.body_bytes() == SIZE


def test_the_lock_waits_then_times_out_with_a_clear_error(tmp_path):
    path = str(tmp_path / "x.lock")
    entered = threading.Event()
    release = threading.Event()

    def hold():
        with _download.locked(path, 5):
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    entered.wait(5)
    # flock locks belong to the open file: a second open in the same process contends like another process
    with pytest.raises(_download.LockBusyError, match="another run"), _download.locked(path, 0.2, "model.gguf"):
        pass
    release.set()
    thread.join()


def test_progress_lines_give_percent_speed_and_eta():
    line = _download.Progress("qwen", 512 << 20, 1 << 30, 512 << 20, 4.0, 128e6).line()
    assert line == "qwen:  50.0% 512.0 MiB / 1.0 GiB 128.0 MB/s ETA 4s"


def test_the_repository_root_is_importable():
    assert (ROOT / "plugins" / "module_utils" / "_download.py").exists()


# --- the file's format ---------------------------------------------------------------------------------------


def test_a_file_without_the_formats_magic_is_refused_and_nothing_is_left(server, tmp_path):
    """What the Hub's web page of a file serves (HTML) never becomes a llama.cpp model."""
    server.add_hf(REPO, "page.gguf", b"<!DOCTYPE html><html>" + os.urandom(PART * 2))
    with pytest.raises(_download.WrongContentError, match=r"start with b'<!DO', not b'GGUF'.*left as it was"):
        pull(request(server, tmp_path, source=f"hf://{REPO}/page.gguf", magic="GGUF"))
    assert listing(tmp_path) == []  # staging included


def test_a_file_with_the_formats_magic_is_placed(server, tmp_path):
    model = b"GGUF\x03\x00\x00\x00" + os.urandom(PART + 17)
    server.add_hf(REPO, "real.gguf", model)
    result = pull(request(server, tmp_path, source=f"hf://{REPO}/real.gguf", magic="GGUF"))
    assert result.action == "downloaded" and (tmp_path / "real.gguf").read_bytes() == model


def test_a_web_page_placed_by_an_earlier_pull_goes_and_is_not_placed_again(server, tmp_path):
    """A pull without the check (an older collection) placed and recorded HTML: the record no longer vouches for it."""
    server.add_hf(REPO, "page.gguf", b"<!DOCTYPE html><html>" + os.urandom(PART))
    spec = {"source": f"hf://{REPO}/page.gguf"}
    assert pull(request(server, tmp_path, **spec)).action == "downloaded"
    assert pull(request(server, tmp_path, **spec, magic="GGUF"), check_mode=True).action == "would download"
    assert (tmp_path / "page.gguf").exists()  # check mode wrote nothing
    with pytest.raises(_download.WrongContentError):
        pull(request(server, tmp_path, **spec, magic="GGUF"))
    assert listing(tmp_path) == []
