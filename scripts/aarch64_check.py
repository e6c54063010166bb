#!/usr/bin/env python3
"""CI: edge-agent on aarch64 under qemu-user, compared with the x86 run of the same commands.

The devices are ARM boards (Debian 12 / Raspberry Pi OS bookworm, Python 3.11); CI is x86-64.
This builds what a device has and runs the agent there, emulated:

- qemu-aarch64 10 from bookworm-backports (Debian 12's qemu 7.2 crashes LiteRT 2.x in its CPU
  detection: it shows the guest the host's x86 /proc/cpuinfo), unpacked, not installed;
- a Debian bookworm arm64 root holding its Python 3.11 (the .debs unpacked with ``dpkg -x``, no
  chroot, no root rights needed but for apt's own downloads);
- the runtime dependencies as aarch64 wheels from PyPI (``pip download --platform``), pinned by
  ``constraints/device.txt``, and once more with ai-edge-litert at the floor pyproject.toml
  claims (``ai-edge-litert>=X``: ``==X`` here): both sets must pass;
- edge-agent's own wheel (built from this checkout) installed with ``pip install --target``,
  the layout whose shipped models were once not found.

Then, for each set: ``--version``, ``models inspect`` and ``infer`` (three test photos) on every
shipped model, ``bench`` with a few runs on the int8 models and ``run --frames 20`` on the demo
clip, each compared with x86 running the same command on the same LiteRT version: same version
string, same model summary, same detections (boxes IoU, score difference printed) and classes.
``--version`` and ``run`` are processes of their own; the model commands of a set go through
the CLI's entry point one after the other in one interpreter (see BATCH). Prints one line per
command and closes with ``aarch64: N passed, N failed``; exit status 1 if any differs or fails.

Cached under ``$EDGE_AGENT_CI_CACHE`` (default ``~/.cache/edge-agent-ci``)/aarch64: qemu, the
arm64 root, the wheels and the installed dependencies, each under a key of what made it; a
fresh machine builds them (a few minutes, most of it downloads and unpacking).

    python scripts/aarch64_check.py [--jobs 2] [--refresh]

Needs apt-get and dpkg-deb (Debian), network access to Debian's mirror (the machine's own, from
/etc/apt/sources.list*) and to PyPI, and this checkout's environment (the x86 side: the Python
running this script, with edge-agent's dependencies).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.inference.agreement import detection_agreement  # noqa: E402
from edge_agent.inference.result import Detection  # noqa: E402

SUITE = "bookworm"  # Debian 12, Raspberry Pi OS bookworm: what the devices run
PY = "3.11"  # bookworm's python3
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# the loader's needs of python3.11 and of the wheels' native code (manylinux: glibc, libstdc++)
DEBS = (
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "zlib1g",
    "libssl3", "libffi8", "libexpat1", "libbz2-1.0", "liblzma5", "libsqlite3-0", "libgcc-s1",
    "libstdc++6", "libgomp1", "libuuid1", "libcrypt1", "libncursesw6", "libtinfo6",
    "libreadline8",
)
# bookworm's glibc is 2.36: any manylinux tag up to it runs there
PLATFORMS = ("manylinux2014_aarch64", *(f"manylinux_2_{m}_aarch64" for m in range(17, 37)))
QEMU_CPU = "neoverse-n1"  # a Cortex-A76-class core; about 2x faster to emulate than "max"
MIN_QEMU = 8  # 7.2 crashes LiteRT 2.x (see above)
PHOTOS = ("astronaut.jpg", "chelsea.jpg", "coffee.jpg")
IOU_MIN = 0.99  # boxes: the note says byte-identical; this leaves room for a last-digit rounding
SCORE_MAX = 0.01
# bench, a few runs, on the int8 models (what devices run; emulated float32 invokes take
# seconds each: their figure is infer's latency)
BENCH_RUNS = {"blazeface_int8": 10, "digits_int8": 10, "mobilenet_v2_int8": 3}
TIMEOUT_S = 900  # one emulated process (a batch takes minutes on a loaded machine)
RUN_CONFIG = '[camera]\nsource = "demo"\nfps = 4.0\n'  # the demo clip, paced: emulated decode


# -- pure parts (tests/unit/test_aarch64_check.py) -------------------------------------------
@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str | None = None


def parse_sources(text: str, deb822: bool) -> list[AptSource]:
    """``deb`` lines of a sources.list, or the stanzas of a ``.sources`` file (binary only)."""
    out = []
    if not deb822:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<rest>.+)", line)
            if not m:
                continue
            parts = m["rest"].split()
            if len(parts) < 3:
                continue
            opts = dict(o.split("=", 1) for o in (m["opts"] or "").split() if "=" in o)
            out.append(AptSource(parts[0], parts[1], tuple(parts[2:]), opts.get("signed-by")))
        return out
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                out.append(AptSource(uri, suite, tuple(fields.get("components", "").split()),
                                     fields.get("signed-by")))
    return out


def debian_mirrors(sources: Iterable[AptSource]) -> tuple[str, str | None]:
    """The machine's Debian archive URI and its security archive URI (None if it has none)."""
    archive = security = None
    for s in sources:
        if "main" not in s.components:
            continue
        if s.suite.endswith("-security"):
            security = security or s.uri
        elif "-" not in s.suite and archive is None:
            archive = s.uri
    return archive or "http://deb.debian.org/debian", security


def arm64_sources(archive: str, security: str | None) -> str:
    """A private sources.list: bookworm, -updates, -security for arm64."""
    opt = f"[arch=arm64 signed-by={KEYRING}]"
    lines = [f"deb {opt} {archive} {SUITE} main", f"deb {opt} {archive} {SUITE}-updates main"]
    if security:
        lines.append(f"deb {opt} {security} {SUITE}-security main")
    return "\n".join(lines) + "\n"


def litert_floor(dependencies: Iterable[str]) -> str:
    """The oldest ai-edge-litert pyproject claims: ``ai-edge-litert>=1.2; ...`` -> ``1.2``."""
    for dep in dependencies:
        m = re.match(r"ai[-_.]edge[-_.]litert\s*>=\s*([0-9][0-9a-z.]*)", dep.strip(), re.I)
        if m:
            return m[1]
    raise SystemExit("pyproject.toml: no 'ai-edge-litert>=X' dependency (the floor to check)")


def floor_constraints(device: str, floor: str) -> str:
    """``constraints/device.txt`` with its ai-edge-litert pin replaced by ``==floor``."""
    lines = [ln for ln in device.splitlines()
             if not re.match(r"\s*ai[-_.]edge[-_.]litert\s*==", ln, re.I)]
    return "\n".join([*lines, f"ai-edge-litert=={floor}"]) + "\n"


def pinned(constraints: str, name: str) -> str:
    for ln in constraints.splitlines():
        m = re.match(rf"\s*{re.escape(name)}\s*==\s*(\S+)", ln, re.I)
        if m:
            return m[1]
    raise SystemExit(f"constraints: no '{name}==' pin")


def compare_infer(x86: list[dict[str, Any]], arm: list[dict[str, Any]]) -> tuple[bool, str]:
    """Per image: same detections (IoU, score) or same classes. (ok, one line)."""
    if len(x86) != len(arm):
        return False, f"{len(x86)} images on x86, {len(arm)} on aarch64"
    ious: list[float] = []
    shifts: list[float] = []
    notes = []
    ok = True
    for a, b in zip(x86, arm, strict=True):
        name = Path(str(a.get("image"))).name
        if "detections" in a or "detections" in b:
            da = [_detection(d) for d in a.get("detections", [])]
            db = [_detection(d) for d in b.get("detections", [])]
            agree = detection_agreement(da, db, iou_min=0.5)
            ious += agree.ious
            shifts += agree.score_shifts
            if not (agree.matched == len(da) == len(db)):
                ok = False
                notes.append(f"{name}: {len(da)} detections on x86, {len(db)} on aarch64, "
                             f"{agree.matched} matched")
        elif "classes" in a or "classes" in b:
            ca = {c["label"]: float(c["score"]) for c in a.get("classes", [])}
            cb = {c["label"]: float(c["score"]) for c in b.get("classes", [])}
            top_a = [c["label"] for c in a.get("classes", [])][:1]
            top_b = [c["label"] for c in b.get("classes", [])][:1]
            shifts += [cb[k] - ca[k] for k in ca.keys() & cb.keys()]
            if top_a != top_b or set(ca) != set(cb):
                ok = False
                notes.append(f"{name}: top-1 {top_a} on x86, {top_b} on aarch64")
        else:
            ok = False
            notes.append(f"{name}: neither detections nor classes")
    worst_iou = min(ious) if ious else None
    worst_shift = max((abs(s) for s in shifts), default=0.0)
    if worst_iou is not None and worst_iou < IOU_MIN:
        ok = False
    if worst_shift > SCORE_MAX:
        ok = False
    parts = [f"{len(x86)} images"]
    if ious:
        parts.append(f"{len(ious)} boxes, IoU min {worst_iou:.4f}")
    parts.append(f"|score diff| max {worst_shift:.4f}")
    return ok, ", ".join(parts + notes)


def _detection(d: dict[str, Any]) -> Detection:
    x1, y1, x2, y2 = (float(v) for v in d["box"])
    return Detection((x1, y1, x2, y2), float(d["score"]), str(d.get("label", "")))


INSPECT_KEYS = ("sha256", "size", "inputs", "outputs", "operators", "operator_count",
                "description")


def compare_inspect(x86: dict[str, Any], arm: dict[str, Any]) -> tuple[bool, str]:
    diff = [k for k in INSPECT_KEYS if x86.get(k) != arm.get(k)]
    if diff:
        return False, "differs in " + ", ".join(diff)
    return True, (f"same ({len(arm['inputs'])} in, {len(arm['outputs'])} out, "
                  f"{arm['operator_count']} ops, delegate {arm.get('delegate')})")


def parse_run(out: str) -> dict[str, Any]:
    """The ``done:`` line and the last summary line of ``edge-agent run``."""
    done = next((ln for ln in reversed(out.splitlines()) if ln.startswith("done:")), "")
    got: dict[str, Any] = {"done": done}
    for key, pat in (("processed", r"processed (\d+)"), ("errors", r"errors (\d+)"),
                     ("invoke_p50", r"invoke p50 ([0-9.]+)")):
        m = re.search(pat, done)
        got[key] = float(m[1]) if m else None
    cpus = re.findall(r"\| cpu (\S+) rss", out)
    got["cpu"] = cpus[-1] if cpus else None
    return got


# -- building the aarch64 side ---------------------------------------------------------------
def sh(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise SystemExit(f"error: {' '.join(str(c) for c in cmd[:4])} ... failed "
                         f"(exit {r.returncode}):\n{tail}")
    return r.stdout


def key_of(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def system_sources() -> list[AptSource]:
    out: list[AptSource] = []
    etc = Path("/etc/apt")
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*"))]
    for f in files:
        if f.suffix in (".list", ".sources") or f.name == "sources.list":
            try:
                out += parse_sources(f.read_text(), deb822=f.suffix == ".sources")
            except OSError:
                continue
    return out


class Apt:
    """apt-get with a private source list, index and cache: the machine's apt stays as it is."""

    def __init__(self, work: Path, sources: str, arch: str | None = None) -> None:
        self.work = work
        (work / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (work / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (work / "sources.list").write_text(sources)
        self.opts = [
            "-o", f"Dir::Etc::SourceList={work / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={work / 'lists'}",
            "-o", f"Dir::Cache={work / 'cache'}",
            "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root",
        ]
        if arch:
            self.opts += ["-o", f"APT::Architecture={arch}", "-o", f"APT::Architectures={arch}"]

    def download(self, packages: Iterable[str], into: Path, *extra: str) -> list[Path]:
        sh("apt-get", *self.opts, "-q", "update")
        into.mkdir(parents=True, exist_ok=True)
        sh("apt-get", *self.opts, "-q", "download", *extra, *packages, cwd=into)
        return sorted(into.glob("*.deb"))


def qemu_major(binary: Path) -> int:
    out = sh(binary, "--version")
    m = re.search(r"version (\d+)", out)
    return int(m[1]) if m else 0


def get_qemu(cache: Path, log: Callable[[str], None]) -> Path:
    """qemu-aarch64 >= 8: $QEMU_AARCH64, else bookworm-backports' qemu-user, unpacked once."""
    env = os.environ.get("QEMU_AARCH64")
    if env:
        return Path(env)
    binary = cache / "qemu" / "qemu-aarch64"
    if binary.is_file() and qemu_major(binary) >= MIN_QEMU:
        return binary
    archive, _ = debian_mirrors(system_sources())
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        apt = Apt(work, f"deb [signed-by={KEYRING}] {archive} {SUITE}-backports main\n")
        (deb,) = apt.download(["qemu-user"], work / "debs", "-t", f"{SUITE}-backports")
        log(f"qemu: {deb.name} ({deb.stat().st_size // 2**20} MiB), unpacking qemu-aarch64")
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(work), "./usr/bin/qemu-aarch64"],
                       stdin=tar.stdout, check=True)
        if tar.wait() != 0:
            raise SystemExit(f"error: dpkg-deb could not read {deb}")
        binary.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / "usr" / "bin" / "qemu-aarch64", binary)
    if qemu_major(binary) < MIN_QEMU:
        raise SystemExit(f"error: {binary}: qemu older than {MIN_QEMU} (LiteRT 2.x crashes)")
    return binary


def get_root(cache: Path, qemu: Path, log: Callable[[str], None]) -> Path:
    """A Debian bookworm arm64 root with python3.11 (unpacked .debs, cached by package list)."""
    root = cache / f"root-{SUITE}-{key_of(*DEBS)}"
    python = root / "usr" / "bin" / f"python{PY}"
    if python.is_file():
        return root
    archive, security = debian_mirrors(system_sources())
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        debs = Apt(work / "apt", arm64_sources(archive, security), "arm64").download(
            DEBS, work / "debs")
        log(f"root: {len(debs)} arm64 packages ({sum(d.stat().st_size for d in debs) // 2**20}"
            f" MiB) from {archive}")
        part = work / "root"
        for deb in debs:
            sh("dpkg-deb", "-x", deb, part)
        sh(qemu, "-L", part, part / "usr" / "bin" / f"python{PY}", "-c",
           "import ssl, sqlite3, ctypes, lzma, bz2, uuid, zlib")
        for old in cache.glob(f"root-{SUITE}-*"):
            shutil.rmtree(old, ignore_errors=True)
        os.replace(part, root)
    return root


@dataclass
class WheelSet:
    name: str  # "device" or "floor"
    constraints: str  # text of the constraints file
    litert: str  # the ai-edge-litert version it pins
    site: Path = field(default=Path())  # its installed dependencies (aarch64)


def pip_platform_args() -> list[str]:
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", PY,
            "--abi", f"cp{PY.replace('.', '')}"]
    for p in PLATFORMS:
        args += ["--platform", p]
    return args


def get_site(cache: Path, ws: WheelSet, requirements: list[str],
             log: Callable[[str], None]) -> Path:
    """The set's aarch64 wheels downloaded and installed (``--target``), cached by its key."""
    key = key_of(ws.constraints, *requirements, PY, *PLATFORMS)
    site = cache / f"site-{ws.name}-{key}"
    if (site / ".complete").is_file():
        return site
    wheels = cache / f"wheels-{ws.name}-{key}"
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cfile = Path(tmp) / "constraints.txt"
        cfile.write_text(ws.constraints)
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
        if not (wheels / ".complete").is_file():
            shutil.rmtree(wheels, ignore_errors=True)
            sh(*pip, "download", "--dest", wheels, *pip_platform_args(), "-c", cfile,
               *requirements)
            (wheels / ".complete").write_text("")
        n = len(list(wheels.glob("*.whl")))
        size = sum(w.stat().st_size for w in wheels.glob("*.whl")) // 2**20
        log(f"wheels {ws.name}: {n} aarch64 wheels ({size} MiB), ai-edge-litert {ws.litert}")
        part = Path(tmp) / "site"
        sh(*pip, "install", "--no-index", "--find-links", wheels, "--target", part,
           "--no-warn-conflicts", *pip_platform_args(), "-c", cfile, *requirements)
        for old in cache.glob(f"site-{ws.name}-*"):
            shutil.rmtree(old, ignore_errors=True)
        for old in cache.glob(f"wheels-{ws.name}-*"):
            if old != wheels:
                shutil.rmtree(old, ignore_errors=True)
        (part / ".complete").write_text("")
        os.replace(part, site)
    return site


def x86_litert(cache: Path, version: str) -> Path | None:
    """A folder to put first on the x86 path so it runs ``version`` (None: it already does)."""
    try:
        if importlib.metadata.version("ai-edge-litert") == version:
            return None
    except importlib.metadata.PackageNotFoundError:
        pass
    target = cache / f"x86-litert-{version}"
    if not (target / ".complete").is_file():
        shutil.rmtree(target, ignore_errors=True)
        sh(sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "install",
           "--no-deps", "--only-binary=:all:", "--target", target, f"ai-edge-litert=={version}")
        (target / ".complete").write_text("")
    return target


# -- the commands ----------------------------------------------------------------------------
# One emulated process per command costs 5-20 s of Python start-up alone, so the model commands
# (inspect, infer, bench) of a set run through the CLI's own entry point one after the other in
# one emulated interpreter (fresh sys.argv, stdout/stderr captured, SystemExit taken as the exit
# status); --version and run --frames 20 get processes of their own (the console script's start,
# the agent's whole life: threads, signals, the control socket).
BATCH = """
import contextlib, io, json, sys, time
from edge_agent.cli.main import main
results = []
for args in json.loads(sys.argv[1]):
    out, err, code, t = io.StringIO(), io.StringIO(), 0, time.monotonic()
    sys.argv = ["edge-agent", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception as exc:  # reported as this command's failure, the others go on
            code, _ = 99, print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    results.append({"code": code, "out": out.getvalue(), "err": err.getvalue(),
                    "seconds": time.monotonic() - t})
print(json.dumps(results))
"""


@dataclass
class Job:
    label: str
    wset: str
    args: list[str]
    arch: str = ""  # "x86" | "arm"
    seconds: float = 0.0
    cpu: float = 0.0  # CPU seconds of its process (0 for a batched one: see the Batch)
    code: int = -1
    out: str = ""
    err: str = ""


@dataclass
class Batch:
    """Jobs of one set run in one emulated interpreter (see BATCH)."""

    wset: str
    jobs: list[Job]
    arch: str
    seconds: float = 0.0
    cpu: float = 0.0


class Runner:
    def __init__(self, qemu: Path, root: Path, project: Path, work: Path,
                 sets: dict[str, WheelSet], x86_paths: dict[str, Path | None]) -> None:
        self.qemu, self.root, self.project, self.work = qemu, root, project, work
        self.sets, self.x86_paths = sets, x86_paths

    def env(self, arch: str, wset: str, label: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("EDGE_AGENT_", "PYTHON", "QEMU_")) and k != "VIRTUAL_ENV"}
        home = self.work / "home" / arch / wset / re.sub(r"\W+", "_", label)
        home.mkdir(parents=True, exist_ok=True)
        env.update(HOME=str(home), XDG_STATE_HOME=str(home / "state"), PYTHONNOUSERSITE="1",
                   LC_ALL="C.UTF-8")
        if arch == "arm":
            env["PYTHONPATH"] = f"{self.project}{os.pathsep}{self.sets[wset].site}"
            env["QEMU_CPU"] = QEMU_CPU
        else:
            # edge-agent from the same --target install; LiteRT of the set's version first
            first = self.x86_paths[wset]
            env["PYTHONPATH"] = os.pathsep.join([*([str(first)] if first else []),
                                                 str(self.project)])
        return env

    def python(self, arch: str) -> list[str]:
        if arch == "arm":
            return [str(self.qemu), "-L", str(self.root),
                    str(self.root / "usr" / "bin" / f"python{PY}")]
        return [sys.executable]

    def run(self, item: Job | Batch) -> None:
        if isinstance(item, Batch):
            self._batch(item)
            return
        code, out, err, item.seconds, item.cpu = self._spawn(
            [*self.python(item.arch), "-m", "edge_agent", *item.args],
            self.env(item.arch, item.wset, item.label))
        item.code, item.out, item.err = code, out, err

    def _spawn(self, cmd: list[str], env: dict[str, str]) -> tuple[int, str, str, float, float]:
        """Run ``cmd``: exit status, stdout, stderr, wall seconds and its CPU seconds (the
        process's own rusage, so what the load of other processes does not change)."""
        t = time.monotonic()
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=self.work,
                                 env=env)
            timer = threading.Timer(TIMEOUT_S, p.kill)  # a hung emulation must not hang CI
            timer.start()
            try:
                _, status, usage = os.wait4(p.pid, 0)
            finally:
                timer.cancel()
            p.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            return (p.returncode, out.read(), err.read(), time.monotonic() - t,
                    usage.ru_utime + usage.ru_stime)

    def _batch(self, batch: Batch) -> None:
        code, out, err, batch.seconds, batch.cpu = self._spawn(
            [*self.python(batch.arch), "-c", BATCH, json.dumps([j.args for j in batch.jobs])],
            self.env(batch.arch, batch.wset, "batch"))
        try:
            results = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            results = []
        if len(results) != len(batch.jobs):
            tail = " | ".join((err or out).strip().splitlines()[-3:])
            for j in batch.jobs:
                j.code, j.err = code or 98, f"the emulated interpreter failed: {tail}"
            return
        for j, res in zip(batch.jobs, results, strict=True):
            j.code, j.out, j.err, j.seconds = res["code"], res["out"], res["err"], res["seconds"]


def jobs_for(wset: str, models: list[Path], photos: list[Path], config: Path) -> list[Job]:
    c = ["-c", str(config)]
    out = [Job("--version", wset, ["--version"])]
    for m in models:
        out.append(Job(f"models inspect {m.stem}", wset,
                       ["models", "inspect", str(m), "--json", *c]))
        out.append(Job(f"infer {m.stem}", wset, ["infer", str(m), *map(str, photos), "--json",
                                                  *c]))
    for m in models:
        if m.stem in BENCH_RUNS:
            out.append(Job(f"bench {m.stem}", wset, ["bench", str(m), "--runs",
                                                      str(BENCH_RUNS[m.stem]), "--warmup", "1",
                                                      "--json", *c]))
    out.append(Job("run --frames 20 (demo clip)", wset, ["run", "--frames", "20", *c]))
    return out


def own_process(job: Job) -> bool:
    return job.label == "--version" or job.label.startswith("run ")


def judge(x86: Job, arm: Job) -> tuple[bool, str]:
    """Compare the aarch64 run of a command with the x86 one: (ok, what was seen)."""
    for j in (x86, arm):
        if j.code != 0:
            tail = " | ".join((j.err or j.out).strip().splitlines()[-3:])
            return False, f"{j.arch} exit {j.code}: {tail}"
    try:
        if x86.label == "--version":
            same = x86.out.strip() == arm.out.strip()
            return same, f"{'same' if same else 'differs'}: {arm.out.strip()}"
        if x86.label.startswith("models inspect"):
            return compare_inspect(json.loads(x86.out), json.loads(arm.out))
        if x86.label.startswith("infer"):
            rows = [[json.loads(ln) for ln in j.out.splitlines() if ln.strip()]
                    for j in (x86, arm)]
            ok, what = compare_infer(rows[0], rows[1])
            lat = sorted(float(r["latency_ms"]) for r in rows[1])
            return ok, f"{what}; aarch64 latency median {lat[len(lat) // 2]:.1f} ms"
        if x86.label.startswith("bench"):
            a, b = json.loads(x86.out), json.loads(arm.out)
            ok = a["runs"] == b["runs"] and b["p50_ms"] > 0
            return ok, (f"invoke p50 x86 {a['p50_ms']:.2f} ms, aarch64 {b['p50_ms']:.1f} ms "
                        f"(x{b['p50_ms'] / max(a['p50_ms'], 1e-9):.0f}), {b['runs']} runs")
        if x86.label.startswith("run"):
            a, b = parse_run(x86.out + x86.err), parse_run(arm.out + arm.err)
            cpu_ok = b["cpu"] not in (None, "0%", "unknown")
            ok = b["processed"] == 20 and b["errors"] == 0 and cpu_ok
            return ok, (f"processed {b['processed']:.0f}, errors {b['errors']:.0f}, invoke p50 "
                        f"x86 {a['invoke_p50']} ms, aarch64 {b['invoke_p50']} ms, "
                        f"cpu shown {b['cpu']}")
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        return False, f"unreadable output ({type(exc).__name__}: {exc})"
    return False, "no comparison for this command"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2, help="emulated commands at once")
    ap.add_argument("--refresh", action="store_true", help="rebuild every cached part")
    ap.add_argument("--only", choices=("device", "floor"), help="one wheel set only")
    args = ap.parse_args()
    start = time.monotonic()
    cache = Path(os.environ.get("EDGE_AGENT_CI_CACHE",
                                Path.home() / ".cache" / "edge-agent-ci")) / "aarch64"
    if args.refresh:
        shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"  {time.monotonic() - start:6.1f} s  {msg}", flush=True)

    for tool in ("apt-get", "dpkg-deb", "tar"):
        if shutil.which(tool) is None:
            raise SystemExit(f"error: {tool} not found: this check needs Debian's apt and dpkg")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    project_meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project_meta["dependencies"])
    device = (ROOT / "constraints" / "device.txt").read_text()
    floor = litert_floor(requirements)
    sets = {
        "device": WheelSet("device", device, pinned(device, "ai-edge-litert")),
        "floor": WheelSet("floor", floor_constraints(device, floor), floor),
    }
    if args.only:
        sets = {args.only: sets[args.only]}
    print(f"== aarch64 check: Debian {SUITE} arm64, Python {PY}, ai-edge-litert "
          + " and ".join(f"{w.litert} ({w.name})" for w in sets.values()), flush=True)

    qemu = get_qemu(cache, log)
    log(f"qemu: {sh(qemu, '--version').splitlines()[0]}  (QEMU_CPU={QEMU_CPU})")
    root = get_root(cache, qemu, log)
    log(f"root: {root.name}, "
        + sh(qemu, "-L", root, root / "usr" / "bin" / f"python{PY}", "-VV").strip())
    for ws in sets.values():
        ws.site = get_site(cache, ws, requirements, log)
    log("dependencies ready: " + ", ".join(f"{w.name} {w.site.name}" for w in sets.values()))
    x86_paths = {name: x86_litert(cache, ws.litert) for name, ws in sets.items()}

    work = Path(tempfile.mkdtemp(prefix="edge-agent-aarch64-"))
    try:
        dist = work / "dist"
        sh(sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "wheel",
           "--no-deps", "-w", dist, _clean_copy(work / "src"))
        (whl,) = dist.glob("litert_edge_agent-*.whl")
        project = work / "project"
        sh(sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "install",
           "--no-deps", "--no-index", "--no-compile", "--target", project, whl)
        log(f"project: {whl.name} installed with pip install --target")
        shipped = project / "edge_agent" / "shipped"
        models = sorted(shipped.glob("*.tflite"))
        if not models:
            raise SystemExit(f"error: {shipped}: no shipped models in the --target install")
        photos = [ROOT / "tests" / "data" / p for p in PHOTOS]
        config = work / "agent.toml"
        config.write_text(RUN_CONFIG)
        runner = Runner(qemu, root, project, work, sets, x86_paths)
        pairs: list[tuple[Job, Job]] = []
        work_of: dict[str, list[Job | Batch]] = {"x86": [], "arm": []}
        for name in sets:
            jobs = jobs_for(name, models, photos, config)
            by_arch = {a: [Job(j.label, name, j.args, a) for j in jobs] for a in work_of}
            pairs += list(zip(by_arch["x86"], by_arch["arm"], strict=True))
            for a, js in by_arch.items():  # the batch first: it takes longest
                work_of[a].append(Batch(name, [j for j in js if not own_process(j)], a))
                work_of[a] += [j for j in js if own_process(j)]
        seconds = {}
        for a in ("x86", "arm"):
            t = time.monotonic()
            with ThreadPoolExecutor(max_workers=2 if a == "x86" else max(1, args.jobs)) as pool:
                list(pool.map(runner.run, work_of[a]))
            seconds[a] = time.monotonic() - t
            log(f"{'x86 reference' if a == 'x86' else 'aarch64 under qemu'}: {len(pairs)} "
                f"commands in {len(work_of[a])} processes, {seconds[a]:.1f} s, "
                f"{sum(i.cpu for i in work_of[a]):.0f} CPU s: "
                + ", ".join(f"{'batch ' if isinstance(i, Batch) else ''}{i.wset}"
                            f"{'' if isinstance(i, Batch) else ' ' + i.label.split()[0]} "
                            f"{i.seconds:.0f} s / {i.cpu:.0f} CPU s" for i in work_of[a]))
        emulated = seconds["arm"]
        failed = 0
        print("\n(seconds: a model command's own, in its set's interpreter; --version and run: the"
              " whole process)")
        print(f"{'command':<34} {'set':<7} {'litert':<7} {'x86 s':>6} {'arm s':>6}  result")
        for x86, arm in pairs:
            ok, what = judge(x86, arm)
            failed += not ok
            print(f"{x86.label:<34} {x86.wset:<7} {sets[x86.wset].litert:<7} "
                  f"{x86.seconds:6.1f} {arm.seconds:6.1f}  {'ok  ' if ok else 'FAIL'} {what}")
        total = time.monotonic() - start
        print(f"\n== aarch64 check took {total:.0f} s ({total - emulated:.0f} s setup and x86, "
              f"{emulated:.0f} s emulated)")
        print(f"aarch64: {len(pairs) - failed} passed, {failed} failed")
        return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _clean_copy(dest: Path) -> Path:
    """This checkout's packaging inputs, copied (pip's in-tree build leaves build/ behind)."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info", "shipped")
    for name in ("edge_agent", "firmware_bridge", "models"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest


if __name__ == "__main__":
    sys.exit(main())
