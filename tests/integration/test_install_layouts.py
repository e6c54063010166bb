"""The shipped models and the demo clip are found in every way pip installs edge-agent.

A real wheel is built from a copy of this checkout (setup.py's build hook puts ``models/``'s
shipped files into it as package data) and installed with the real pip, without its
dependencies, into: a venv, ``--user`` (a temporary ``PYTHONUSERBASE``), a system-style
``--prefix`` and ``--target DIR``. In each, ``edge-agent run --frames 2`` (the shipped face
detector on the demo clip, the command that said "shipped models not found" under ``--target``)
runs from a folder outside the checkout, and ``edge_agent.resources`` reports folders inside
the layout, never the checkout. The dependencies come from the environment running the tests,
added after the layout on the path (they are not what is tested).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.helpers import ROOT

SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
PACKAGES = ("edge_agent", "firmware_bridge", "models")
PY = f"python{sys.version_info.major}.{sys.version_info.minor}"
WHERE = (
    "import json, edge_agent\n"
    "from edge_agent import resources as r\n"
    "print(json.dumps({'package': edge_agent.__file__, 'models': str(r.models_dir()),"
    " 'model': str(r.shipped_model()), 'clip': str(r.demo_clip())}))\n"
)


@dataclass
class Layout:
    root: Path  # everything the install wrote is under here
    python: str  # the interpreter that sees the layout
    cli: list[str]  # how edge-agent is started there
    env: dict[str, str]


def _deps_path() -> list[str]:
    """This environment's site-packages: the dependencies (numpy, LiteRT...) for the layouts."""
    paths = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    return sorted(p for p in paths if p)


def _env(tmp: Path, pythonpath: list[str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONUSERBASE", "EDGE_AGENT_MODELS_DIR",
                        "EDGE_AGENT_CONFIG", "VIRTUAL_ENV", "PYTHONHOME")}
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), XDG_STATE_HOME=str(home / "state"), PYTHONNOUSERSITE="1")
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    env.update(extra)
    return env


def _pip(*args: str, python: str = sys.executable, env: dict[str, str] | None = None) -> None:
    r = subprocess.run([python, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, f"pip {' '.join(args)}:\n{r.stdout}\n{r.stderr}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built by pip from a copy of this checkout (no build/ left in the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info", "shipped")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    _pip("wheel", "--no-deps", "-w", str(tmp / "dist"), str(src))
    (whl,) = (tmp / "dist").glob("litert_edge_agent-*.whl")
    return whl


def _venv(tmp: Path, whl: Path) -> Layout:
    root = tmp / "venv"
    r = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    python = str(root / "bin" / "python")
    _pip("--python", python, "install", "--no-deps", "--no-index", str(whl))
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path("
                                "'purelib'))"], capture_output=True, text=True,
                               check=True).stdout.strip())
    (site / "zz_test_deps.pth").write_text("\n".join(_deps_path()) + "\n")
    return Layout(root, python, [str(root / "bin" / "edge-agent")], _env(tmp, []))


def _user(tmp: Path, whl: Path) -> Layout:
    """``pip install --user`` by the base interpreter (a venv has no user site)."""
    root = tmp / "userbase"
    base = getattr(sys, "_base_executable", sys.executable)
    env = _env(tmp, _deps_path(), PYTHONUSERBASE=str(root))
    del env["PYTHONNOUSERSITE"]
    # only PYTHONUSERBASE (a temporary folder) is written: no system package is touched
    _pip("install", "--user", "--no-deps", "--no-index", "--break-system-packages", str(whl),
         python=base, env=env)
    return Layout(root, base, [base, "-m", "edge_agent"], env)


def _prefix(tmp: Path, whl: Path) -> Layout:
    """A system-style install (like /usr/local): ``--prefix``, not this interpreter's own."""
    root = tmp / "prefix"
    _pip("install", "--no-deps", "--no-index", "--prefix", str(root), str(whl))
    site = root / "lib" / PY / "site-packages"
    assert site.is_dir(), sorted(str(p) for p in root.rglob("*"))[:20]
    return Layout(root, sys.executable, [str(root / "bin" / "edge-agent")],
                  _env(tmp, [str(site), *_deps_path()]))


def _target(tmp: Path, whl: Path) -> Layout:
    root = tmp / "target"
    _pip("install", "--no-deps", "--no-index", "--target", str(root), str(whl))
    return Layout(root, sys.executable, [sys.executable, "-m", "edge_agent"],
                  _env(tmp, [str(root), *_deps_path()]))


LAYOUTS = {"venv": _venv, "user": _user, "prefix": _prefix, "target": _target}


@pytest.fixture(params=sorted(LAYOUTS))
def layout(request: pytest.FixtureRequest, wheel: Path, tmp_path: Path) -> Iterator[Layout]:
    yield LAYOUTS[request.param](tmp_path, wheel)


def test_layout_finds_shipped_models_and_demo_clip(layout: Layout, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"  # never the checkout: nothing found by accident
    work.mkdir()
    r = subprocess.run([layout.python, "-c", WHERE], capture_output=True, text=True,
                       timeout=120, env=layout.env, cwd=work)
    assert r.returncode == 0, r.stderr
    where = json.loads(r.stdout)
    for key in ("package", "models", "model", "clip"):
        path = Path(where[key]).resolve()
        assert path.is_relative_to(layout.root.resolve()), (key, path, layout.root)
        assert not path.is_relative_to(ROOT), (key, path)
    assert Path(where["models"]).name == "shipped"
    assert Path(where["model"]).name == "blazeface_int8.tflite"
    assert Path(where["clip"]).name == "demo_astronaut.mp4"

    run = subprocess.run([*layout.cli, "run", "--frames", "2"], capture_output=True,
                         text=True, timeout=180, env=layout.env, cwd=work)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "shipped models not found" not in out
    assert "processed 2" in out, out


def test_override_and_not_found_say_where(tmp_path: Path) -> None:
    """``$EDGE_AGENT_MODELS_DIR`` wins; a folder without models is named in the error."""
    env = _env(tmp_path, [str(ROOT)], EDGE_AGENT_MODELS_DIR=str(tmp_path / "mine"))
    (tmp_path / "mine").mkdir()
    shutil.copy2(ROOT / "models" / "blazeface_int8.tflite", tmp_path / "mine")
    code = "from edge_agent import resources as r; print(r.models_dir())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == str(tmp_path / "mine"), r.stderr
    r = subprocess.run([sys.executable, "-c", "from edge_agent import resources as r; "
                        "print(r.demo_clip())"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=60)
    assert r.returncode != 0
    assert f"{tmp_path / 'mine' / 'demo_astronaut.mp4'}: shipped demo clip missing" in r.stderr
