#!/usr/bin/env python3
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Disposable Debian nodes for the node_bootstrap scenario, without a container engine.

    nodes.py build                 the root file system tarball (cached under .cache/molecule/node_bootstrap/)
    nodes.py up NAME INDEX [--fixture FLAVOUR]
                                   a node at 10.231.0.<10+INDEX>, reachable over SSH as user ansible;
                                   prints its entry of molecule's instance config
    nodes.py down NAME...          stop nodes and delete their files
    nodes.py teardown              stop the package server and remove the bridge

A node is a debootstrap root file system with its own PID, mount, UTS, IPC and network namespaces
(``ip netns`` + ``unshare`` + ``chroot``), running sshd as its only service. PID 1 carries ``container=``, so
Ansible reports it as a container; systemd does not run. It has no route beyond the bridge 10.231.0.1/24:
packages come from a local repository inside the root file system (the Debian packages the role installs,
downloaded when the tarball is built) and from a package server on the bridge that stands in for NVIDIA's
repository (a signed test double of nvidia-container-toolkit) and for k3s's releases (a test double of the
binary with its checksum file). The tarball is keyed by a hash of everything it holds, so a warm cache
makes a node in seconds. Needs root (namespaces, mounts, debootstrap); the host tools come from Debian.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[2]
CACHE = Path(os.environ.get("NODE_BOOTSTRAP_CACHE", PROJECT / ".cache" / "molecule" / "node_bootstrap"))
ROLE_VARS = PROJECT / "roles" / "node_bootstrap" / "vars" / "Debian.yml"

SUITE = "bookworm"
MIRROR = os.environ.get("NODE_BOOTSTRAP_MIRROR", "http://deb.debian.org/debian")
COMPONENTS = "main,contrib,non-free-firmware"
# what a fresh Debian server has and Ansible needs: Python with apt bindings, sshd, sudo, systemctl
BASE_PACKAGES = ["python3", "python3-apt", "openssh-server", "sudo", "systemd", "ca-certificates", "iproute2"]
# the package groups of roles/node_bootstrap/vars/Debian.yml the scenario's nodes install
ROLE_PACKAGE_GROUPS = ["longhorn", "amd_firmware", "intel_firmware"]
# host tools, pinned to bookworm's versions; a newer point release is used if the pinned one has left the mirror
HOST_PACKAGES = {
    "debootstrap": "1.0.128+nmu2+deb12u2",
    "zstd": "1.5.4+dfsg2-5",
    "gnupg": "2.2.40-1.1",
    "iproute2": "6.1.0-3",
    "openssh-client": "1:9.2p1-2+deb12u7",
}
HOST_TOOLS = {"debootstrap": "debootstrap", "zstd": "zstd", "gnupg": "gpg", "iproute2": "ip", "openssh-client": "ssh"}
FORMAT = 3  # bump when the build below changes what the tarball holds

BRIDGE, BRIDGE_IP, PREFIX = "hlai-br0", "10.231.0.1", 24
SERVE_PORT = 8931
USER = "ansible"
LOCAL_REPO = "/srv/homelab-ai-debs"
NVIDIA_TOOLKIT_VERSION = "1.17.8-1"
K3S_VERSION = "v1.33.5+k3s1"

START = r"""
set -eu
root=$1; name=$2
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
mkdir -p "$root/run/sshd" "$root/dev/pts"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
hostname "$name"
exec chroot "$root" /bin/bash -c 'trap "exit 0" TERM; /usr/sbin/sshd -D -e & wait'
"""


def log(message: str) -> None:
    print(f"nodes.py: {message}", file=sys.stderr, flush=True)


def run(argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=True, **kwargs)


def chroot(root: Path, *argv: str, env: Dict[str, str] | None = None) -> None:
    environment = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}
    run(["chroot", str(root), *argv], env={**environment, **(env or {})}, stdout=subprocess.DEVNULL)


# --- host -------------------------------------------------------------------------------------------


def ensure_host_tools() -> None:
    if os.geteuid() != 0:
        sys.exit("nodes.py: needs root (debootstrap, namespaces and mounts); run the scenario as root")
    missing = [package for package, tool in HOST_TOOLS.items() if not shutil.which(tool)]
    if not missing:
        return
    log(f"installing {', '.join(missing)} from Debian")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    pinned = [f"{package}={HOST_PACKAGES[package]}" for package in missing]
    try:
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *pinned], env=env, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        log(f"the pinned versions {', '.join(pinned)} are not on the mirror any more; installing the current ones")
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env, stdout=subprocess.DEVNULL)


def role_packages() -> List[str]:
    import yaml

    table = yaml.safe_load(ROLE_VARS.read_text(encoding="utf-8"))["_node_bootstrap_packages"]
    packages: List[str] = []
    for group in ROLE_PACKAGE_GROUPS:
        packages += [name for name in table[group] if name not in packages]
    return packages


def cache_key() -> str:
    inputs = {
        "format": FORMAT,
        "suite": SUITE,
        "mirror": MIRROR,
        "components": COMPONENTS,
        "base": BASE_PACKAGES,
        "role": role_packages(),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def tarball() -> Path:
    return CACHE / f"rootfs-{SUITE}-{cache_key()}.tar.zst"


# --- the root file system ---------------------------------------------------------------------------


def packages_index(repo: Path) -> None:
    """Packages and Release of a flat repository (what dpkg-scanpackages and apt-ftparchive would write)."""
    stanzas = []
    for deb in sorted(repo.glob("*.deb")):
        control = run(["dpkg-deb", "--field", str(deb)], capture_output=True, text=True).stdout.rstrip("\n")
        data = deb.read_bytes()
        stanzas.append(
            f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\nMD5sum: {hashlib.md5(data).hexdigest()}\n"  # apt indexes carry MD5 sums
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    packages = "\n".join(stanzas).encode()
    (repo / "Packages").write_bytes(packages)
    release = [
        "Origin: homelab.ai tests",
        "Label: homelab.ai tests",
        "Suite: stable",
        "Codename: stable",
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}",
        "SHA256:",
        f" {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages",
    ]
    (repo / "Release").write_text("\n".join(release) + "\n", encoding="utf-8")


def build() -> Path:
    ensure_host_tools()
    target = tarball()
    if target.exists():
        log(f"cached root file system {target.name}")
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=CACHE))
    root = work / "root"
    try:
        log(f"debootstrap {SUITE} from {MIRROR} (a few minutes; cached afterwards)")
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--components={COMPONENTS}",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(root),
                MIRROR,
            ],
            stdout=subprocess.DEVNULL,
        )
        # like any container image: package scripts must not start services (there is no init to start them)
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\n# no service starts in this container\nexit 101\n", encoding="utf-8")
        policy.chmod(0o755)
        packages = role_packages()
        log(f"downloading {', '.join(packages)} and their dependencies into the node's local repository")
        chroot(root, "apt-get", "update", "-q")
        chroot(root, "apt-get", "install", "-y", "-q", "--download-only", "--no-install-recommends", *packages)
        repo = root / LOCAL_REPO.lstrip("/")
        repo.mkdir(parents=True)
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            shutil.move(str(deb), repo / deb.name)
        packages_index(repo)
        # the node's only Debian source: it has no route to the mirror
        (root / "etc/apt/sources.list").write_text(
            f"# The test node's Debian packages, downloaded when its root file system was built (no network here).\ndeb [trusted=yes] file:{LOCAL_REPO} ./\n",
            encoding="utf-8",
        )
        shutil.rmtree(root / "var/lib/apt/lists")
        (root / "var/lib/apt/lists/partial").mkdir(parents=True)
        chroot(root, "apt-get", "update", "-q")
        chroot(root, "apt-get", "clean")
        chroot(root, "useradd", "--create-home", "--shell", "/bin/bash", USER)
        sudoers = root / "etc/sudoers.d" / USER
        sudoers.write_text(f"{USER} ALL=(ALL) NOPASSWD: ALL\n", encoding="utf-8")
        sudoers.chmod(0o440)
        (root / "etc/ssh/sshd_config.d/homelab-ai-test.conf").write_text("UseDNS no\nPasswordAuthentication no\n", encoding="utf-8")
        partial = target.with_suffix(".partial")
        log(f"packing {target.name}")
        run(["tar", "--numeric-owner", "-I", "zstd -T0 -3", "-C", str(root), "-cf", str(partial), "."])
        partial.rename(target)
        for old in CACHE.glob("rootfs-*.tar.zst"):
            if old != target:
                old.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"built {target.name} in {time.monotonic() - started:.0f} s")
    return target


# --- the package server (NVIDIA's repository and k3s's releases, as test doubles) --------------------


def fake_deb(out: Path, package: str, version: str, files: Dict[str, str], description: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        for path, text in files.items():
            target = tree / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            target.chmod(0o755 if "/bin/" in path else 0o644)
        (tree / "DEBIAN").mkdir()
        (tree / "DEBIAN/control").write_text(
            f"Package: {package}\nVersion: {version}\nArchitecture: amd64\nMaintainer: homelab.ai tests <tests@homelab.ai.invalid>\n"
            f"Section: utils\nPriority: optional\nDescription: {description}\n",
            encoding="utf-8",
        )
        run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(out / f"{package}_{version}_amd64.deb")], stdout=subprocess.DEVNULL)


NVIDIA_CTK = r"""#!/bin/sh
# Test double of nvidia-ctk: `runtime configure --runtime=containerd` writes a drop-in like nvidia-ctk 1.17 does.
set -eu
if [ "$*" = "--version" ]; then echo "NVIDIA Container Toolkit CLI version 1.17.8 (test double)"; exit 0; fi
if [ "${1:-}" = runtime ] && [ "${2:-}" = configure ] && [ "${3:-}" = --runtime=containerd ]; then
  mkdir -p /etc/containerd/conf.d
  cat > /etc/containerd/conf.d/99-nvidia.toml <<'TOML'
version = 2

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
  BinaryName = "/usr/bin/nvidia-container-runtime"
TOML
  grep -qs '^imports' /etc/containerd/config.toml || printf 'imports = ["/etc/containerd/conf.d/*.toml"]\nversion = 2\n' >> /etc/containerd/config.toml
  echo "INFO Wrote updated config to /etc/containerd/conf.d/99-nvidia.toml (test double)"
  exit 0
fi
echo "nvidia-ctk test double: $* is not implemented" >&2
exit 2
"""


def build_server() -> Path:
    """The package server's tree: a signed flat repository at nvidia/stable/deb/amd64 and a k3s release."""
    serve = CACHE / "serve"
    stamp = serve / ".complete"
    if stamp.exists():
        return serve
    ensure_host_tools()
    shutil.rmtree(serve, ignore_errors=True)
    repo = serve / "nvidia/stable/deb/amd64"
    repo.mkdir(parents=True)
    fake_deb(
        repo,
        "nvidia-container-toolkit",
        NVIDIA_TOOLKIT_VERSION,
        {
            "/usr/bin/nvidia-ctk": NVIDIA_CTK,
            "/usr/bin/nvidia-container-runtime": '#!/bin/sh\n# test double of NVIDIA\'s OCI runtime\nexec runc "$@"\n',
            "/etc/nvidia-container-runtime/config.toml": "# test double\n",
        },
        "Test double of NVIDIA's container toolkit, for homelab.ai's molecule scenario",
    )
    packages_index(repo)
    with tempfile.TemporaryDirectory() as home:
        gpg = ["gpg", "--homedir", home, "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
        run([*gpg, "--quick-generate-key", "homelab.ai test repository <tests@homelab.ai.invalid>", "ed25519", "sign", "never"])
        (serve / "nvidia/gpgkey").write_bytes(run([*gpg, "--armor", "--export"], capture_output=True).stdout)
        run([*gpg, "--clearsign", "--output", str(repo / "InRelease"), str(repo / "Release")])
    release = serve / "k3s" / K3S_VERSION
    release.mkdir(parents=True)
    binary = b"#!/bin/sh\n# test double of the k3s binary\necho 'k3s version " + K3S_VERSION.encode() + b" (test double)'\n"
    (release / "k3s").write_bytes(binary)
    (release / "sha256sum-amd64.txt").write_text(f"{hashlib.sha256(binary).hexdigest()}  k3s\n", encoding="utf-8")
    stamp.write_text("", encoding="utf-8")
    return serve


def server_pid_file() -> Path:
    return CACHE / "run" / "server.pid"


def start_server() -> None:
    pid_file = server_pid_file()
    if pid_file.exists() and _alive(int(pid_file.read_text())):
        return
    serve = build_server()
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "run" / "server.log", "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", BRIDGE_IP, "--directory", str(serve), str(SERVE_PORT)],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid_file.write_text(str(process.pid), encoding="utf-8")
    _wait_for_port(BRIDGE_IP, SERVE_PORT, 10)


# --- nodes ------------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"nodes.py: nothing answers on {host}:{port} after {timeout:.0f} s") from None
            time.sleep(0.2)


def _ip(*argv: str, check: bool = True) -> None:
    subprocess.run(["ip", *argv], check=check, stdout=subprocess.DEVNULL, stderr=None if check else subprocess.DEVNULL)


def ensure_bridge() -> None:
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode != 0:
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{BRIDGE_IP}/{PREFIX}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")


def node_dir(name: str) -> Path:
    return CACHE / "nodes" / name


def ssh_key() -> Path:
    key = CACHE / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "molecule node_bootstrap", "-f", str(key)])
    return key


def _mounted_under(path: Path) -> List[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]


def write_fixture(root: Path, flavour: str) -> None:
    """The files of fixtures.yml for ``flavour``, written into the node's root file system."""
    import yaml

    fixtures = yaml.safe_load((HERE / "fixtures.yml").read_text(encoding="utf-8"))
    if flavour not in fixtures:
        raise SystemExit(f"nodes.py: no fixture {flavour!r} in fixtures.yml (there are {', '.join(fixtures)})")
    for path, text in fixtures[flavour].items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def up(name: str, index: int, fixture: str | None = None) -> None:
    image = build()
    ensure_bridge()
    start_server()
    down([name])
    address = f"10.231.0.{10 + index}"
    root = node_dir(name) / "root"
    root.mkdir(parents=True)
    started = time.monotonic()
    run(["tar", "--numeric-owner", "-I", "zstd", "-C", str(root), "-xf", str(image)])  # keeps device nodes and owners
    if fixture:
        write_fixture(root, fixture)
    (root / "etc/hostname").write_text(name + "\n", encoding="utf-8")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n{address} {name}\n", encoding="utf-8")
    ssh_dir = root / "home" / USER / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(ssh_key().with_suffix(".pub").read_text(encoding="utf-8"), encoding="utf-8")
    owner = (root / "home" / USER).stat()
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, owner.st_uid, owner.st_gid)
    namespace, veth = f"hlai-{name}", f"hlai{index}h"
    _ip("link", "del", veth, check=False)  # left by a node whose namespace the kernel has not cleaned up yet
    (node_dir(name) / "veth").write_text(veth, encoding="utf-8")
    _ip("netns", "add", namespace)
    _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
    _ip("link", "set", veth, "master", BRIDGE, "up")
    _ip("-n", namespace, "addr", "add", f"{address}/{PREFIX}", "dev", "eth0")
    _ip("-n", namespace, "link", "set", "eth0", "up")
    _ip("-n", namespace, "link", "set", "lo", "up")
    with open(node_dir(name) / "node.log", "ab") as out:
        # PID 1 of the node is the shell that execs chroot and sshd; "container=" in its environment is how
        # Ansible (and systemd) tell a container
        argv = ["ip", "netns", "exec", namespace, "unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--kill-child", "--"]
        argv += ["env", "-i", "container=homelab-ai-molecule", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
        argv += ["sh", "-c", START, "start", str(root), name]
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (node_dir(name) / "pid").write_text(str(process.pid), encoding="utf-8")
    _wait_for_port(address, 22, 30)
    log(f"{name} is up at {address} ({time.monotonic() - started:.1f} s)")
    # molecule's instance config entry
    print(json.dumps({"instance": name, "address": address, "user": USER, "port": 22, "identity_file": str(ssh_key())}))


def down(names: Sequence[str]) -> None:
    for name in names:
        directory = node_dir(name)
        pid_file = directory / "pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            if _alive(pid):
                # unshare ignores SIGTERM while it waits; killing it makes the kernel kill its child, the node's
                # PID 1 (--kill-child), and with it every process of the node's PID namespace
                os.kill(pid, signal.SIGKILL)
                for _ in range(100):
                    if not _alive(pid):
                        break
                    time.sleep(0.05)
        _ip("netns", "del", f"hlai-{name}", check=False)
        veth_file = directory / "veth"
        if veth_file.exists():
            # the kernel removes a dead namespace's interfaces asynchronously; do not leave it to chance
            _ip("link", "del", veth_file.read_text().strip(), check=False)
        if directory.exists():
            mounted = _mounted_under(directory)
            if mounted:
                raise SystemExit(f"nodes.py: {', '.join(mounted)} still mounted; not deleting {directory}")
            shutil.rmtree(directory)


def teardown() -> None:
    pid_file = server_pid_file()
    if pid_file.exists():
        pid = int(pid_file.read_text())
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
        pid_file.unlink()
    _ip("link", "del", BRIDGE, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build")
    start = commands.add_parser("up")
    start.add_argument("name")
    start.add_argument("index", type=int)
    start.add_argument("--fixture", help="the flavour of fixtures.yml to write into the node")
    stop = commands.add_parser("down")
    stop.add_argument("names", nargs="+")
    commands.add_parser("teardown")
    args = parser.parse_args()
    if args.command == "build":
        print(build())
        build_server()
    elif args.command == "up":
        up(args.name, args.index, args.fixture)
    elif args.command == "down":
        down(args.names)
    elif args.command == "teardown":
        teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
