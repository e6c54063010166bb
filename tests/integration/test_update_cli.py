"""The update CLI as a technician and a release manager use it: registry keygen/publish,
models list/activate/rollback/verify/gc. Real models, a real store made by the updater."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np

from edge_agent.updates.publish import publish
from tests.support.helpers import MODELS, run_cli
from tests.support.updates import new_key, seed_store

DIGITS = MODELS / "digits_int8.tflite"


def test_keygen_and_publish_with_golden_labels_decoder(tmp_path: Path) -> None:
    key = tmp_path / "release.key"
    r = run_cli("registry", "keygen", str(key))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and (tmp_path / "release.key.pub").is_file()
    again = run_cli("registry", "keygen", str(key))
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    assert again.stderr.count("\n") == 1
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"digit {i}" for i in range(10)) + "\n")
    golden = tmp_path / "g.npz"
    np.savez(golden, input0=np.zeros((1, 8, 8, 1), np.int8))
    r = run_cli("registry", "publish", str(DIGITS), "--name", "digits", "--version", "3.1",
                "--key", str(key), "--to", str(tmp_path / "reg"), "--labels", str(labels),
                "--decoder", "classification", "--golden", str(golden), "--atol", "2",
                "--latency-budget-ms", "25", "--seq", "7", "--min-agent", "0.1.0", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["seq"] == 7 and set(out["files"]) == {"digits_int8.tflite", "golden.npz"}
    d = tmp_path / "reg" / "digits" / "3.1"
    m = json.loads((d / "manifest.json").read_text())
    assert m["postprocessing"]["decoder"]["labels"][3] == "digit 3"
    assert m["health"]["golden"] == {"file": "golden.npz", "atol": 2.0, "rtol": 0.0}
    assert m["model"]["inputs"][0]["shape"] == [1, 8, 8, 1]
    assert m["compatibility"]["min_agent"] == "0.1.0"
    with np.load(d / "golden.npz") as z:
        assert z["output0"].shape == (1, 10)  # computed by running the model
    sig = json.loads((d / "manifest.json.sig").read_text())
    assert sig["keyid"] == out["keyid"] and sig["alg"] == "ed25519"


def test_publish_refuses_a_file_that_is_not_tflite(tmp_path: Path) -> None:
    key = tmp_path / "k"
    run_cli("registry", "keygen", str(key))
    junk = tmp_path / "model.tflite"
    junk.write_bytes(b"not a model at all")
    r = run_cli("registry", "publish", str(junk), "--name", "x", "--version", "1",
                "--key", str(key), "--to", str(tmp_path / "reg"))
    assert r.returncode == 3 and "not a TFLite flatbuffer" in r.stderr
    assert r.stderr.count("\n") == 1


def test_models_list_verify_activate_rollback_gc(tmp_path: Path) -> None:
    key, pub = new_key(tmp_path)
    reg = tmp_path / "reg"
    for i, v in enumerate(("1.0", "2.0", "3.0", "4.0")):
        publish(DIGITS, name="digits", version=v, key=key, to=reg, seq=i + 1)
    state = tmp_path / "state"
    for v in ("1.0", "2.0", "3.0", "4.0"):
        seed_store(state, reg.as_uri(), pub, "digits", v, [1, 8, 8, 1])
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[device]\nstate_dir = "{state}"\n[updates]\nkeep_versions = 2\n')

    def listing() -> dict[str, dict[str, object]]:
        r = run_cli("models", "list", "--json", "-c", str(cfg))
        assert r.returncode == 0, r.stderr
        return {x["version"]: x for x in json.loads(r.stdout)["versions"]}

    rows = listing()
    assert rows["4.0"]["role"] == "active" and rows["3.0"]["role"] == "previous"
    r = run_cli("models", "rollback", "-c", str(cfg))
    assert r.returncode == 0 and "active: digits 3.0" in r.stdout
    r = run_cli("models", "activate", "1.0", "-c", str(cfg))
    assert r.returncode == 0 and "active: digits 1.0" in r.stdout
    rows = listing()
    assert rows["1.0"]["role"] == "active" and rows["3.0"]["role"] == "previous"
    r = run_cli("models", "gc", "--json", "-c", str(cfg))
    assert json.loads(r.stdout)["removed"] == ["digits/2.0-" + str(rows["2.0"]["sha256"])[:12]]
    assert set(listing()) == {"1.0", "3.0", "4.0"}  # newest 2 + active + previous
    r = run_cli("models", "activate", "2.0", "-c", str(cfg))
    assert r.returncode == 14 and "not installed" in r.stderr and r.stderr.count("\n") == 1
    # a model whose bytes changed on disk
    victim = state / "models" / "versions" / "digits" / f"3.0-{str(rows['3.0']['sha256'])[:12]}"
    f = victim / "digits_int8.tflite"
    f.write_bytes(f.read_bytes()[:-1] + b"\x00")
    r = run_cli("models", "verify", "-c", str(cfg))
    assert r.returncode == 1 and "BAD digits/3.0" in r.stdout
    r = run_cli("models", "rollback", "-c", str(cfg))
    assert r.returncode == 14 and "no longer matches" in r.stderr


def test_publish_refuses_path_names_and_republishing_before_writing(tmp_path: Path) -> None:
    key = tmp_path / "k"
    assert run_cli("registry", "keygen", str(key)).returncode == 0
    reg = tmp_path / "reg"

    def pub(name: str, version: str, seq: str = "5") -> tuple[int, str]:
        r = run_cli("registry", "publish", str(DIGITS), "--name", name, "--version", version,
                    "--key", str(key), "--to", str(reg), "--seq", seq)
        return r.returncode, r.stderr

    def tree() -> list[str]:
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))

    before = tree()
    for name, version, what in (("../evil", "1.0", "--name"), ("digits", "../../x", "--version"),
                                ("..", "1.0", "--name"), ("digits", ".hidden", "--version")):
        code, err = pub(name, version)
        assert code == 17 and what in err and "nothing was written" in err, err
        assert err.count("\n") == 1
        assert tree() == before  # no <to>/../evil, not even an empty folder
    assert pub("digits", "1.0")[0] == 0
    published = (reg / "digits" / "1.0" / "manifest.json").read_bytes()
    code, err = pub("digits", "1.0", seq="6")
    assert code == 17 and "needs a new version string" in err and err.count("\n") == 1
    assert (reg / "digits" / "1.0" / "manifest.json").read_bytes() == published
    assert json.loads((reg / "digits" / "latest.json").read_text())["seq"] == 5
