"""The container images a Compose topology runs, and local stand-ins when they are absent.

The Compose files name the official images at pinned versions (overridable with
REDISLAB_REDIS_IMAGE / REDISLAB_TOXIPROXY_IMAGE). The lab never pulls on its own
(set REDISLAB_PULL=1 to allow it): when an image is not present, it builds a
`FROM scratch` stand-in from this machine's Debian redis binaries (with their
libraries and busybox-static for a shell) and the Toxiproxy binaries.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from labcommon.errors import LabError
from topologies import binaries

REDIS_IMAGE = "redis:7.0.15"  # matches Debian 12's redis 7.0.15, which the stand-in is built from
TOXIPROXY_IMAGE = "ghcr.io/shopify/toxiproxy:2.12.0"
REDIS_STANDIN = "redislab/redis:7.0.15-standin"
TOXIPROXY_STANDIN = "redislab/toxiproxy:2.12.0-standin"
_HERE = Path(__file__).parent / "images"
_BUSYBOX_APPLETS = ("sh", "cat", "grep", "printf", "mkdir", "ls", "echo", "sleep", "rm", "test")


def _present(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0


def _pulled(image: str) -> bool:
    if os.environ.get("REDISLAB_PULL") != "1":
        return False
    return subprocess.run(["docker", "pull", "-q", image], capture_output=True, timeout=300).returncode == 0


def _copy_with_libs(binary: str, root: Path, dest: str) -> None:
    """Copy ``binary`` to ``root/dest`` and every shared library ldd lists to the same path under root."""
    target = root / dest.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(binary), target)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    for line in ldd.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) > 2:
            path = parts[2]
        else:
            path = parts[0] if parts and parts[0].startswith("/") else ""
        if path.startswith("/"):
            lib = root / path.lstrip("/")
            lib.parent.mkdir(parents=True, exist_ok=True)
            if not lib.exists():
                shutil.copy2(os.path.realpath(path), lib)


def _build(tag: str, dockerfile: str, fill: Callable[[Path], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="redislab-image-") as tmp:
        ctx = Path(tmp)
        (ctx / "rootfs").mkdir()
        fill(ctx / "rootfs")
        shutil.copy(_HERE / dockerfile, ctx / "Dockerfile")
        result = subprocess.run(["docker", "build", "-q", "-t", tag, str(ctx)], capture_output=True, text=True)
        if result.returncode != 0:
            raise LabError(f"building the stand-in image {tag} failed", "see the output below",
                           (result.stdout + result.stderr)[-2000:])


def _fill_redis(root: Path) -> None:
    _copy_with_libs(binaries.find("redis-server"), root, "/usr/local/bin/redis-server")
    _copy_with_libs(binaries.find("redis-cli"), root, "/usr/local/bin/redis-cli")
    busybox = shutil.which("busybox")
    ldd = subprocess.run(["ldd", busybox], capture_output=True, text=True) if busybox else None
    if busybox is None or ldd is None or "not a dynamic" not in ldd.stdout + ldd.stderr:
        raise LabError("busybox-static is not installed", "run `make setup` (apt-get install busybox-static)")
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy2(os.path.realpath(busybox), root / "bin" / "busybox")
    for applet in _BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for d in ("data", "tmp"):
        (root / d).mkdir()
        (root / d).chmod(0o1777)


def _fill_toxiproxy(root: Path) -> None:
    shutil.copy2(binaries.find("toxiproxy-server"), root / "toxiproxy")
    shutil.copy2(binaries.find("toxiproxy-cli"), root / "toxiproxy-cli")


def ensure_images() -> dict[str, str]:
    """Environment for `docker compose` naming images that are present, building stand-ins as needed."""
    env: dict[str, str] = {}
    for var, official, standin, dockerfile, fill in (
        ("REDISLAB_REDIS_IMAGE", REDIS_IMAGE, REDIS_STANDIN, "redis.Dockerfile", _fill_redis),
        ("REDISLAB_TOXIPROXY_IMAGE", TOXIPROXY_IMAGE, TOXIPROXY_STANDIN, "toxiproxy.Dockerfile", _fill_toxiproxy),
    ):
        wanted = os.environ.get(var) or official
        if _present(wanted) or _pulled(wanted):
            env[var] = wanted
            continue
        if os.environ.get(var):
            raise LabError(f"{var}={wanted} is not present and could not be pulled",
                           f"pull it first, or unset {var} to use the local stand-in")
        if not _present(standin):
            _build(standin, dockerfile, fill)
        env[var] = standin
    return env
