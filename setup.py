"""Build hook (everything else is in pyproject.toml): the shipped files go into the package.

The checkout keeps the shipped models, their description JSONs, models/README.md (model cards
and the sha256 table ``doctor`` checks) and the demo clip in ``models/``. A wheel carries them
as package data, ``edge_agent/shipped/``, so they are wherever pip put the package: a venv,
``--user``, a system or ``--prefix`` install, ``--target DIR``. ``edge_agent.resources`` finds
them there through ``importlib.resources`` (and in ``models/`` when run from a checkout).
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# keep in step with MANIFEST.in (the sdist must carry what the wheel is built from)
SHIPPED = ("README.md", "*.tflite", "*.json", "*.txt", "*.mp4", "*.avi")


def shipped_files() -> list[Path]:
    src = HERE / "models"
    return sorted({p for pattern in SHIPPED for p in src.glob(pattern) if p.is_file()})


class BuildPyWithShipped(build_py):
    """``build_py`` that also copies ``models/``'s shipped files to ``edge_agent/shipped/``."""

    def run(self) -> None:
        super().run()
        files = shipped_files()
        if not any(p.suffix == ".tflite" for p in files):
            raise SystemExit(f"{HERE / 'models'}: no shipped .tflite models to package")
        target = Path(self.build_lib) / "edge_agent" / "shipped"
        self.mkpath(str(target))
        for path in files:
            self.copy_file(str(path), str(target / path.name))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        target = Path(self.build_lib) / "edge_agent" / "shipped"
        extra = [str(target / p.name) for p in shipped_files()]
        return [*super().get_outputs(include_bytecode), *extra]


setup(cmdclass={"build_py": BuildPyWithShipped})
