"""Build the trainer image (docker/trainer/Dockerfile) offline, cached by the hash of what goes into it.

Why offline: no container registry is reachable here, so the base image is made locally with
``debootstrap --variant=minbase`` + ``docker import`` (Debian packages only), and every Python package
comes from a wheelhouse built on the host with pip (PyPI or pip's local index; torch is the CPU wheel
on disk). The wheelhouse is served to the build over loopback (``--network host``) rather than copied
into the context, so no 190 MB wheel ends up in an image layer and no second stage has to copy a
1.8 GB venv. In production ``BASE_IMAGE`` is a CUDA PyTorch image and ``--online`` lets pip use PyPI.

Caching: the image is tagged ``<repo>:ctx-<hash>`` where the hash covers the Dockerfile, the image's
requirement files, constraints.txt, the package source and the base image id; a build whose tag exists
is skipped. The wheelhouse is rebuilt only when the requirement files change.

CLI: ``python -m tools.docker_build [--tag T] [--base-image IMG] [--online] [--force]``
(``scripts/build_trainer_image.sh`` is a thin wrapper). Needs root for debootstrap.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from news_signals.core.config import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

TRAINER_DIR = PROJECT_ROOT / "docker" / "trainer"
BASE_IMAGE_TAG = "news-signals-base:bookworm"
DEBIAN_SUITE = "bookworm"  # python3 = 3.11, matching the host's cp311 wheels
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BUILD_DIR = PROJECT_ROOT / "build"
REQUIREMENT_FILES = ("requirements.txt", "requirements-nodeps.txt")
# A fixed port keeps PIP_INSTALL_ARGS (part of Docker's cache key) stable, so the dependency layer is reused.
WHEEL_SERVER_PORT = 47631
DOCKER_TIMEOUT_S = 1800  # a quiet `pip install torch` step may not print for minutes


class BuildError(RuntimeError):
    """The image could not be built; the message says which step and how to fix it."""


@dataclass(frozen=True)
class BuildResult:
    tag: str
    context_tag: str
    base_image: str
    cached: bool
    seconds: float
    size_bytes: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def trainer_image_name() -> str:
    """The image the DAG runs (``$NEWS_SIGNALS_TRAINER_IMAGE``), from the one place that decides it."""
    from news_signals.retrain.trainer import trainer_image

    return trainer_image()


def docker_client():
    """A Docker SDK client (DOCKER_HOST or the local socket) that answers; BuildError when none does."""
    import docker

    try:
        client = docker.from_env(timeout=DOCKER_TIMEOUT_S)
        client.ping()
    except Exception as exc:  # docker.errors.DockerException, requests errors
        raise BuildError(
            f"no Docker daemon answers ({exc}); start one with scripts/ensure_dockerd.sh or set DOCKER_HOST"
        ) from exc
    return client


def image_exists(client, tag: str) -> bool:
    import docker

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def _split_tag(tag: str) -> tuple[str, str]:
    """``repo[:tag]`` -> (repo, tag); a registry port (``host:5000/x``) is not a tag."""
    if ":" in tag.rsplit("/", 1)[-1]:
        repo, _, name_tag = tag.rpartition(":")
        return repo, name_tag
    return tag, "latest"


def _as_root_error(step: str) -> BuildError:
    return BuildError(f"{step} needs root (debootstrap creates device nodes); run as root or in CI")


def ensure_base_image(client, tag: str = BASE_IMAGE_TAG, *, mirror: str | None = None) -> str:
    """Make ``tag`` from ``debootstrap --variant=minbase`` unless it exists; returns the tag.

    The rootfs is streamed as a tar straight into the daemon (``docker import``) and then deleted.
    """
    if image_exists(client, tag):
        log.info("base image %s exists; skipping debootstrap", tag)
        return tag
    if os.geteuid() != 0:
        raise _as_root_error("making the base image")
    if shutil.which("debootstrap") is None:
        log.info("installing Debian's debootstrap")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (
            ["apt-get", "update", "-qq", "-o", "DPkg::Lock::Timeout=600"],
            ["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600", "--no-install-recommends", "debootstrap"],
        ):
            if subprocess.run(cmd, env=env).returncode != 0:
                raise BuildError(f"`{' '.join(cmd)}` failed; install debootstrap by hand (apt-get install debootstrap)")
    mirror = mirror or Settings.from_env().debian_mirror or DEFAULT_MIRROR
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="news-signals-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = [
            "debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_PACKAGES)}",
            DEBIAN_SUITE, str(rootfs), mirror,
        ]
        log.info("running %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(
                f"debootstrap failed (exit {proc.returncode}); is {mirror} reachable? "
                f"Set NEWS_SIGNALS_DEBIAN_MIRROR to another mirror. Last output:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        repo, name_tag = _split_tag(tag)
        try:
            client.api.import_image_from_stream(
                tar.stdout, repository=repo, tag=name_tag, changes=["ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]']
            )
        finally:
            tar.stdout.close()
            if tar.wait() != 0:
                raise BuildError("tar of the debootstrap rootfs failed")
    log.info("made base image %s in %.0f s", tag, time.monotonic() - started)
    return tag


def _hash_files(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _package_files() -> list[Path]:
    pkg = PROJECT_ROOT / "include" / "news_signals"
    files = [p for p in pkg.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return [*files, PROJECT_ROOT / "pyproject.toml"]


def _requirement_files() -> list[Path]:
    return [TRAINER_DIR / name for name in REQUIREMENT_FILES] + [PROJECT_ROOT / "constraints.txt"]


def context_hash(base_image_id: str, pip_args: str) -> str:
    """Hash of everything that changes the image: Dockerfile, requirements, package source, base."""
    files = [TRAINER_DIR / "Dockerfile", *_requirement_files(), *_package_files()]
    digest = hashlib.sha256(_hash_files(files, PROJECT_ROOT).encode())
    digest.update(base_image_id.encode())
    digest.update(pip_args.encode())
    return digest.hexdigest()


def _pip(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"`{' '.join(cmd)}` failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def build_wheelhouse(dest: Path | None = None) -> Path:
    """Wheels for the image's requirements (pip wheel on the host), rebuilt only when they change."""
    dest = dest or BUILD_DIR / "trainer-wheelhouse"
    stamp = dest / ".requirements.sha256"
    want = _hash_files(_requirement_files(), PROJECT_ROOT)
    if stamp.is_file() and stamp.read_text() == want:
        log.info("wheelhouse %s is current", dest)
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    constraints = ["-c", str(PROJECT_ROOT / "constraints.txt")]
    _pip(["wheel", "--quiet", "-w", str(dest), "-r", str(TRAINER_DIR / "requirements.txt"), *constraints])
    _pip(["wheel", "--quiet", "--no-deps", "-w", str(dest), "-r", str(TRAINER_DIR / "requirements-nodeps.txt")])
    stamp.write_text(want)
    return dest


def build_package_wheel(dest: Path) -> Path:
    """The news-signals wheel, built from a clean copy of the source (no stale build/ leftovers)."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("news_signals-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="news-signals-src-") as tmp:
        src = Path(tmp)
        shutil.copy2(PROJECT_ROOT / "pyproject.toml", src / "pyproject.toml")
        readme = PROJECT_ROOT / "README.md"
        if readme.is_file():
            shutil.copy2(readme, src / "README.md")
        else:
            (src / "README.md").write_text("news-signals\n")
        shutil.copytree(
            PROJECT_ROOT / "include" / "news_signals",
            src / "include" / "news_signals",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        _pip(["wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(dest), str(src)])
    wheels = list(dest.glob("news_signals-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one news_signals wheel in {dest}, found {wheels}")
    return wheels[0]


def _stage_context(ctx: Path) -> None:
    """Dockerfile, requirement files and pkg/ (the news_signals wheel alone: a source change rebuilds
    only the last layers)."""
    if ctx.exists():
        shutil.rmtree(ctx)
    ctx.mkdir(parents=True)
    for name in ("Dockerfile", *REQUIREMENT_FILES):
        shutil.copy2(TRAINER_DIR / name, ctx / name)
    build_package_wheel(ctx / "pkg")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base class
        log.debug("wheel server: " + format, *args)


@contextmanager
def serve_wheelhouse(wheelhouse: Path) -> Iterator[str]:
    """Serve ``wheelhouse`` on 127.0.0.1 (a directory listing pip's --find-links reads); yields pip args."""
    handler = partial(_QuietHandler, directory=str(wheelhouse))
    try:
        server = ThreadingHTTPServer(("127.0.0.1", WHEEL_SERVER_PORT), handler)
    except OSError:  # port taken: any free port (the dependency layer is then rebuilt once)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="wheel-server", daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield f"--no-index --find-links=http://127.0.0.1:{port}/ --trusted-host 127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _docker_build(client, ctx: Path, tag: str, buildargs: dict[str, str], network_mode: str | None) -> None:
    log.info("docker build %s (BASE_IMAGE=%s)", tag, buildargs.get("BASE_IMAGE", "Dockerfile default"))
    tail: list[str] = []
    for chunk in client.api.build(
        path=str(ctx), tag=tag, buildargs=buildargs, rm=True, forcerm=True, decode=True, pull=False,
        network_mode=network_mode,
    ):
        if "stream" in chunk:
            line = chunk["stream"].rstrip()
            if line:
                log.info("build: %s", line)
                tail = (tail + [line])[-30:]
        if "error" in chunk:
            raise BuildError(f"docker build of {tag} failed: {chunk['error']}\n" + "\n".join(tail))


def _prune_context_tags(client, repo: str, keep: str) -> None:
    """Drop older ``<repo>:ctx-*`` tags (one per source change); images still tagged otherwise stay."""
    import docker

    for image in client.images.list(name=repo):
        for tag in image.tags:
            if tag.startswith(f"{repo}:ctx-") and tag != keep:
                try:
                    client.images.remove(tag, noprune=False)
                    log.info("removed old build tag %s", tag)
                except docker.errors.APIError as exc:  # in use by a container: keep it
                    log.info("kept old build tag %s (%s)", tag, exc.explanation)


def build_trainer_image(
    tag: str | None = None,
    *,
    base_image: str | None = None,
    online: bool = False,
    force: bool = False,
) -> BuildResult:
    """Build (or reuse) the trainer image and tag it ``tag``; offline unless ``online``.

    Offline: base = the debootstrap image (made when missing) and pip sees only the host wheelhouse.
    """
    started = time.monotonic()
    tag = tag or trainer_image_name()
    client = docker_client()
    if base_image is None:
        base_image = ensure_base_image(client) if not online else None
    base_id = client.images.get(base_image).id if base_image and image_exists(client, base_image) else str(base_image)
    repo, name_tag = _split_tag(tag)
    context_tag = f"{repo}:ctx-{context_hash(base_id, 'online' if online else 'offline')[:16]}"
    cached = not force and image_exists(client, context_tag)
    if cached:
        log.info("image %s exists (same Dockerfile, requirements, source and base); not rebuilding", context_tag)
    else:
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        ctx = Path(tempfile.mkdtemp(prefix="trainer-context-", dir=BUILD_DIR))
        _stage_context(ctx)
        buildargs = {"BASE_IMAGE": base_image} if base_image else {}
        try:
            if online:
                _docker_build(client, ctx, context_tag, {**buildargs, "PIP_INSTALL_ARGS": ""}, None)
            else:
                with serve_wheelhouse(build_wheelhouse()) as pip_args:
                    _docker_build(client, ctx, context_tag, {**buildargs, "PIP_INSTALL_ARGS": pip_args}, "host")
        finally:
            shutil.rmtree(ctx, ignore_errors=True)
    image = client.images.get(context_tag)
    image.tag(repo, name_tag)
    _prune_context_tags(client, repo, keep=context_tag)
    result = BuildResult(
        tag=tag,
        context_tag=context_tag,
        base_image=base_image or "Dockerfile default",
        cached=cached,
        seconds=round(time.monotonic() - started, 1),
        size_bytes=int(image.attrs.get("Size", 0)),
    )
    log.info("trainer image %s ready (%s, %.0f MB, %.0f s)", tag, "cached" if cached else "built",
             result.size_bytes / 1e6, result.seconds)
    return result


# ---- the compose stack's images (docker-compose.yaml) ------------------------------------------
LOCAL_DIR = PROJECT_ROOT / "docker" / "local"
AIRFLOW_DIR = PROJECT_ROOT / "docker" / "airflow"
# Local equivalents of the official images, tagged so that docker-compose.yaml's variables point at them
# (AIRFLOW_BASE_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, SOCKET_PROXY_IMAGE; see stack_image_env()).
LOCAL_STACK_IMAGES = {
    "AIRFLOW_BASE_IMAGE": ("airflow", "news-signals-local/airflow:3.3.2-python3.11"),
    "POSTGRES_IMAGE": ("postgres", "news-signals-local/postgres:15"),
    "REDIS_IMAGE": ("redis", "news-signals-local/redis:7"),
    "SOCKET_PROXY_IMAGE": ("socket-proxy", "news-signals-local/docker-socket-proxy:latest"),
}
AIRFLOW_IMAGE_TAG = "news-signals-airflow:3.3.2"
AIRFLOW_REQUIREMENTS = ("requirements.txt", "requirements-corpus.txt", "constraints.txt",
                        "requirements-hopsworks.txt", "constraints-hopsworks.txt")
AIRFLOW_CELERY_REQUIREMENTS = AIRFLOW_DIR / "requirements-celery.txt"


def build_airflow_wheelhouse(dest: Path | None = None) -> Path:
    """Wheels for the Airflow image (requirements + corpus + the Celery stack + the isolated Hopsworks venv).

    One directory serves both environments: each install picks its versions with its own constraints file
    (SQLAlchemy 2.1 for Airflow, 2.0.41 for hopsworks), rebuilt when any of them changes.
    """
    dest = dest or BUILD_DIR / "airflow-wheelhouse"
    sources = [PROJECT_ROOT / name for name in AIRFLOW_REQUIREMENTS] + [AIRFLOW_CELERY_REQUIREMENTS]
    stamp = dest / ".requirements.sha256"
    want = _hash_files(sources, PROJECT_ROOT)
    if stamp.is_file() and stamp.read_text() == want:
        log.info("wheelhouse %s is current", dest)
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    constraints = ["-c", str(PROJECT_ROOT / "constraints.txt")]
    _pip([
        "wheel", "--quiet", "-w", str(dest), "-r", str(PROJECT_ROOT / "requirements.txt"),
        "-r", str(AIRFLOW_CELERY_REQUIREMENTS), "setuptools>=68", *constraints,
    ])
    _pip(["wheel", "--quiet", "--no-deps", "-w", str(dest), "-r", str(PROJECT_ROOT / "requirements-corpus.txt")])
    _pip(["wheel", "--quiet", "-w", str(dest), "-r", str(PROJECT_ROOT / "requirements-hopsworks.txt"),
          "-c", str(PROJECT_ROOT / "constraints-hopsworks.txt")])
    stamp.write_text(want)
    return dest


def _stage_files(ctx: Path, files: dict[str, Path]) -> Path:
    """A fresh build context holding exactly ``files`` (context name -> source); no .venv, no data."""
    if ctx.exists():
        shutil.rmtree(ctx)
    ctx.mkdir(parents=True)
    for name, src in files.items():
        dest = ctx / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest)
    return ctx


def _local_context(name: str, ctx: Path) -> Path:
    files = {p.name: p for p in (LOCAL_DIR / name).iterdir() if p.is_file()}
    if name == "airflow":
        files |= {"requirements-celery.txt": AIRFLOW_CELERY_REQUIREMENTS, "constraints.txt": PROJECT_ROOT / "constraints.txt"}
    return _stage_files(ctx, files)


def _airflow_context(ctx: Path) -> Path:
    files = {name: PROJECT_ROOT / name for name in (*AIRFLOW_REQUIREMENTS, "pyproject.toml")}
    readme = PROJECT_ROOT / "README.md"
    files["README.md"] = readme if readme.is_file() else PROJECT_ROOT / "pyproject.toml"
    files["include/news_signals"] = PROJECT_ROOT / "include" / "news_signals"
    files["docker/airflow/Dockerfile"] = AIRFLOW_DIR / "Dockerfile"
    return _stage_files(ctx, files)


def _build_in(client, staged: Path, tag: str, buildargs: dict[str, str], dockerfile: str = "Dockerfile") -> None:
    """docker build of a staged context on the host network (so pip reaches the loopback wheel server)."""
    log.info("docker build %s (%s)", tag, ", ".join(f"{k}={v}" for k, v in buildargs.items() if k != "PIP_INSTALL_ARGS"))
    tail: list[str] = []
    try:
        for chunk in client.api.build(
            path=str(staged), dockerfile=dockerfile, tag=tag, buildargs=buildargs, rm=True, forcerm=True,
            decode=True, pull=False, network_mode="host",
        ):
            line = chunk.get("stream", "").rstrip()
            if line:
                log.info("build: %s", line)
                tail = (tail + [line])[-30:]
            if "error" in chunk:
                raise BuildError(f"docker build of {tag} failed: {chunk['error']}\n" + "\n".join(tail))
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def stack_image_env() -> dict[str, str]:
    """docker-compose.yaml's image variables pointing at the local images this module builds."""
    return {var: tag for var, (_, tag) in LOCAL_STACK_IMAGES.items()} | {"AIRFLOW_IMAGE_NAME": AIRFLOW_IMAGE_TAG}


def build_stack_images(*, airflow_tag: str = AIRFLOW_IMAGE_TAG) -> dict[str, float]:
    """Build the local Airflow/Postgres/Redis/socket-proxy bases and our Airflow image, offline.

    Docker's layer cache does the caching (the wheel server's fixed port keeps the pip steps' cache key
    stable), so an unchanged rebuild takes seconds. Returns seconds per image.
    """
    client = docker_client()
    base = ensure_base_image(client)
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    with serve_wheelhouse(build_airflow_wheelhouse()) as pip_args:
        for name, tag in LOCAL_STACK_IMAGES.values():
            started = time.monotonic()
            ctx = _local_context(name, Path(tempfile.mkdtemp(prefix=f"{name}-context-", dir=BUILD_DIR)))
            _build_in(client, ctx, tag, {"BASE_IMAGE": base, "PIP_INSTALL_ARGS": pip_args})
            seconds[tag] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        ctx = _airflow_context(Path(tempfile.mkdtemp(prefix="airflow-context-", dir=BUILD_DIR)))
        _build_in(
            client, ctx, airflow_tag,
            {"AIRFLOW_IMAGE": LOCAL_STACK_IMAGES["AIRFLOW_BASE_IMAGE"][1], "PIP_INSTALL_ARGS": pip_args},
            dockerfile="docker/airflow/Dockerfile",
        )
        seconds[airflow_tag] = round(time.monotonic() - started, 1)
    for tag, took in seconds.items():
        log.info("image %s ready in %.0f s", tag, took)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docker_build", description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default=None, help="image tag (default $NEWS_SIGNALS_TRAINER_IMAGE or news-signals-trainer:latest)")
    parser.add_argument("--base-image", default=None,
                        help=f"BASE_IMAGE build arg (default: {BASE_IMAGE_TAG}, made by debootstrap; with --online the Dockerfile's CUDA image)")
    parser.add_argument("--online", action="store_true", help="let pip use PyPI inside the build instead of the host wheelhouse")
    parser.add_argument("--force", action="store_true", help="rebuild even when the cached image matches")
    parser.add_argument("--stack", action="store_true",
                        help="build docker-compose.yaml's local images instead (Airflow, Postgres, Redis, socket proxy "
                        "bases from Debian packages, then our Airflow image); prints the compose variables to use")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        if args.stack:
            seconds = build_stack_images()
            print(json.dumps({"seconds": seconds, "env": stack_image_env()}, indent=2))
            return 0
        result = build_trainer_image(args.tag, base_image=args.base_image, online=args.online, force=args.force)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result.to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
