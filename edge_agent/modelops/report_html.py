"""The comparison as one self-contained HTML file: opens offline (no CDN, no script, no
external file) — the table, latency histograms (inline SVG) and the frames where A and B
disagree most, both results drawn on them (JPEG data URIs)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np

from ..common.atomicfile import atomic_write_bytes
from .compare import Comparison, KeptFrame

COLOR_A = (60, 200, 0)  # BGR: green
COLOR_B = (255, 0, 220)  # BGR: magenta
CSS_A = "#00c83c"
CSS_B = "#dc00ff"
MIN_PX = 192  # tiny inputs (8x8 digits) are scaled up to be seen
BINS = 30


def _e(v: Any) -> str:
    return html.escape(str(v))


def _n(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}{unit}"
    return f"{v}{unit}"


def _ratio(v: float | None, more: str, less: str) -> str:
    if v is None:
        return "–"
    return f"{v:.2f}x {more}" if v >= 1 else f"{1 / v:.2f}x {less}"


def frame_picture(k: KeptFrame) -> bytes:
    """The frame with A's result (green) and B's (magenta) drawn on it, as JPEG."""
    import cv2

    from ..inference.annotate import annotate, encode_jpeg

    img = k.image if k.image.ndim == 3 else cv2.cvtColor(k.image, cv2.COLOR_GRAY2BGR)
    a, b = k.a, k.b
    h, w = img.shape[:2]
    if max(h, w) < MIN_PX:
        s = MIN_PX / max(h, w)
        img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_NEAREST)
        a, b = a.scaled(s), b.scaled(s)
    out = annotate(img, a, color=COLOR_A, text_color=COLOR_A)
    annotate(out, b, color=COLOR_B, text_color=COLOR_B, first_row=3, copy=False)
    return encode_jpeg(out, 85)


def histogram_svg(a_ms: list[float], b_ms: list[float], name_a: str, name_b: str) -> str:
    """Both latency distributions on shared bins, A green, B magenta."""
    width, height, pad = 640, 220, 36
    values = np.asarray(a_ms + b_ms, np.float64)
    if values.size == 0:
        return "<p>no latency measured</p>"
    hi = float(np.percentile(values, 99.5))
    lo = float(values.min())
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-3, BINS + 1)
    ca, _ = np.histogram(np.clip(a_ms, lo, edges[-1]), edges)
    cb, _ = np.histogram(np.clip(b_ms, lo, edges[-1]), edges)
    top = max(int(ca.max()), int(cb.max()), 1)
    bw = (width - 2 * pad) / BINS
    bars = []
    for i in range(BINS):
        for count, color, off in ((ca[i], CSS_A, 0.0), (cb[i], CSS_B, bw / 2)):
            bh = (height - 2 * pad) * count / top
            bars.append(
                f'<rect x="{pad + i * bw + off:.1f}" y="{height - pad - bh:.1f}" '
                f'width="{bw / 2 - 1:.1f}" height="{bh:.1f}" fill="{color}"/>'
            )
    ticks = []
    for t in np.linspace(edges[0], edges[-1], 5):
        x = pad + (t - edges[0]) / (edges[-1] - edges[0]) * (width - 2 * pad)
        ticks.append(f'<text x="{x:.1f}" y="{height - pad + 16}" font-size="11" '
                     f'text-anchor="middle">{t:.3g}</text>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="invoke latency histogram">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        f'stroke="#444"/>{"".join(bars)}{"".join(ticks)}'
        f'<text x="{width / 2}" y="{height - 4}" font-size="12" text-anchor="middle">'
        f"invoke ms (values above p99.5 in the last bin)</text>"
        f'<text x="{pad}" y="14" font-size="12" fill="{CSS_A}">■ A {_e(name_a)} '
        f'(n={len(a_ms)})</text><text x="{pad + 260}" y="14" font-size="12" fill="{CSS_B}">'
        f"■ B {_e(name_b)} (n={len(b_ms)})</text></svg>"
    )


def render(cmp: Comparison) -> str:
    doc = cmp.to_json()
    a, b, r = doc["a"], doc["b"], doc["ratios"]
    rows = [
        ("file", _e(a["path"]), _e(b["path"]), ""),
        ("input", _e(a["inputs"][0]["dtype"]), _e(b["inputs"][0]["dtype"]), ""),
        ("size", _n(a["size"], " B"), _n(b["size"], " B"), _ratio(r["size"], "smaller", "larger")),
        ("load", _n(a["load_ms"], " ms"), _n(b["load_ms"], " ms"),
         _ratio(r["load"], "faster", "slower")),
        ("invoke p50", _n(a["invoke_p50_ms"], " ms"), _n(b["invoke_p50_ms"], " ms"),
         _ratio(r["speed_p50"], "faster", "slower")),
        ("invoke p95", _n(a["invoke_p95_ms"], " ms"), _n(b["invoke_p95_ms"], " ms"),
         _ratio(r["speed_p95"], "faster", "slower")),
        ("frame p50 (pre + invoke + decode)", _n(a["e2e_p50_ms"], " ms"),
         _n(b["e2e_p50_ms"], " ms"), ""),
        ("peak RSS of the model", _n(a["model_rss_kb"], " KiB"), _n(b["model_rss_kb"], " KiB"),
         _ratio(r["model_rss"], "less", "more")),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{va}</td><td>{vb}</td><td>{ratio}</td></tr>"
                    for k, va, vb, ratio in rows)
    agree = "".join(f"<tr><th>{_e(k)}</th><td>{_n(v)}</td></tr>"
                    for k, v in doc["agreement"].items())
    tensors = "".join(
        f"<tr><th>{_e(t['name'])}</th><td>{_n(t['cosine_mean'])}</td><td>{_n(t['cosine_min'])}"
        f"</td><td>{_n(t['max_abs_error'])}</td></tr>" for t in doc["tensors"])
    acc = doc["accuracy"]
    acc_html = ""
    if acc is not None:
        key = "top1" if acc["metric"] == "top-1" else "map50"
        extra = "top5" if key == "top1" else "map50_95"
        acc_html = (
            f"<h2>Against ground truth ({_e(acc['truth'])})</h2><table class='grid'>"
            f"<tr><th></th><th>A</th><th>B</th><th>B - A</th></tr>"
            f"<tr><th>{_e(acc['metric'])} %</th><td>{_n(acc['a'][key])}</td>"
            f"<td>{_n(acc['b'][key])}</td><td>{acc['delta_points']:+.2f} points</td></tr>"
            f"<tr><th>{extra} %</th><td>{_n(acc['a'][extra])}</td><td>{_n(acc['b'][extra])}"
            f"</td><td></td></tr><tr><th>images</th><td colspan='3'>{acc['a']['images']}</td>"
            "</tr></table>"
        )
    figures = []
    for k in cmp.kept:
        data = base64.b64encode(frame_picture(k)).decode()
        figures.append(
            f"<figure><img alt='{_e(k.name)}' src='data:image/jpeg;base64,{data}'>"
            f"<figcaption>{_e(k.name)} · disagreement {k.disagreement:.3f}<br>"
            f"<span class='a'>A: {_e(k.a.summary())}</span><br>"
            f"<span class='b'>B: {_e(k.b.summary())}</span></figcaption></figure>"
        )
    frames_html = "".join(figures) or "<p>A and B agree on every frame.</p>"
    svg = histogram_svg(cmp.a.invoke_ms, cmp.b.invoke_ms, a["name"], b["name"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>edge-agent compare: {_e(a['name'])} vs {_e(b['name'])}</title>
<style>
body{{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}}
h1{{font-size:20px}} h2{{font-size:16px;margin-top:28px}}
.summary{{font-size:18px;font-weight:bold;background:#f3f3f3;padding:10px;
border-left:6px solid #444}}
table.grid{{border-collapse:collapse}} .grid th,.grid td{{border:1px solid #ccc;padding:4px 10px;
text-align:left;font-size:13px}} .grid th{{background:#fafafa}}
figure{{display:inline-block;margin:8px;vertical-align:top;max-width:500px}}
figure img{{border:1px solid #999;max-width:480px}} figcaption{{font-size:12px}}
.a{{color:{CSS_A}}} .b{{color:{CSS_B}}}
</style></head><body>
<h1>Model comparison: A <span class="a">{_e(a['name'])}</span> vs B
<span class="b">{_e(b['name'])}</span></h1>
<p class="summary" id="summary">{_e(doc['summary'])}</p>
<p>{doc['frames']} frames from {_e(doc['source'])}; {doc['runs']} timed invokes per model,
interleaved in blocks; {doc['threads']} thread(s); {_e(a['backend'])}, delegate
{_e(a['delegate'])}.</p>
<table class="grid" id="costs"><tr><th></th><th>A {_e(a['name'])}</th><th>B {_e(b['name'])}</th>
<th>B vs A</th></tr>{table}</table>
<h2>Invoke latency</h2>{svg}
<h2>Agreement of B with A (A is the reference)</h2><table class="grid" id="agreement">{agree}
</table>
<h2>Output tensors</h2><table class="grid" id="tensors"><tr><th>output</th><th>cosine mean</th>
<th>cosine min</th><th>max abs error</th></tr>{tensors}</table>
{acc_html}
<h2>Where A and B disagree most</h2>
<p><span class="a">■ A</span> <span class="b">■ B</span></p>
<div id="frames">{frames_html}</div>
</body></html>
"""


def write_html(cmp: Comparison, path: Path) -> None:
    atomic_write_bytes(path, render(cmp).encode("utf-8"))
