// The technician's page: everything comes from this device's own API (no CDN, no internet).
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const $ = (id) => document.getElementById(id);
const COLORS = { fps: "#111827", invoke: "#2563eb", preprocess: "#059669", postprocess: "#d97706", e2e: "#dc2626", age: "#7c3aed" };

async function get(path, as) {
  const r = await fetch(path, { headers, cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return as === "blob" ? r.blob() : r.json();
}

let liveUrl = null;
async function live() {
  try {
    const blob = await get("/v1/snapshot.jpg", "blob");
    const url = URL.createObjectURL(blob);
    $("live").src = url;
    if (liveUrl) URL.revokeObjectURL(liveUrl);
    liveUrl = url;
    $("live-note").textContent = "";
  } catch (e) {
    $("live-note").textContent = "no frame: " + e.message;
  }
  setTimeout(live, 250);
}

function row(name, value, ok) {
  const tr = document.createElement("tr");
  const a = document.createElement("td"); a.textContent = name;
  const b = document.createElement("td"); b.textContent = value;
  b.className = ok === undefined ? "" : ok ? "ok" : "bad";
  tr.append(a, b);
  return tr;
}

async function status() {
  try {
    const s = await get("/v1/status");
    const m = s.model || {};
    $("device").textContent = s.device_id || "edge-agent";
    $("model").textContent = [m.name, m.version, m.backend, m.delegate].filter(Boolean).join(" · ");
    $("fps").textContent = "fps " + ((s.fps || {}).processed ?? "…");
    $("updated").textContent = "agent " + s.version + ", up " + Math.round(s.uptime_s || 0) + " s";
    const cam = s.camera || {}, br = s.broker || {}, bridge = s.bridge || {}, up = s.update || {};
    const http = (s.metrics || {}).http || {};
    const body = $("health").tBodies[0];
    body.replaceChildren(
      row("camera", (cam.health || "?") + (cam.last_error ? " — " + cam.last_error : ""), cam.health === "ok"),
      row("broker", br.enabled ? (br.connected ? "connected " : "not connected ") + (br.host || "") +
        (br.outbox_pending ? ", " + br.outbox_pending + " pending" : "") : "MQTT off", br.enabled ? !!br.connected : undefined),
      row("bridge", Object.keys(bridge).length ? (bridge.connected ? "connected" : "not connected") +
        (bridge.temperature_c != null ? ", " + bridge.temperature_c + " °C" : "") +
        (bridge.power_w != null ? ", " + bridge.power_w + " W" : "") : "off", Object.keys(bridge).length ? !!bridge.connected : undefined),
      row("update", up.state ? up.model + " " + up.version + ": " + up.state : "none", up.state ? up.state !== "rolled_back" && up.state !== "failed" : undefined),
      row("model store", (s.model_store || {}).state || "?", (s.model_store || {}).state === "ok"),
      row("API", "infer ok " + ((http.infer || {}).ok || 0) + ", busy " + ((http.infer || {}).busy || 0) + ", viewers " + (http.stream_clients || 0)),
    );
  } catch (e) {
    $("updated").textContent = e.message;
  }
}

function draw(points) {
  const c = $("chart"), g = c.getContext("2d");
  const W = c.width, H = c.height, pad = 30;
  g.clearRect(0, 0, W, H);
  c.dataset.points = String(points.length);
  if (points.length < 2) { g.fillText("waiting for metrics…", pad, H / 2); return; }
  const t0 = points[0].ts, t1 = points[points.length - 1].ts || t0 + 1;
  const x = (t) => pad + (W - 2 * pad) * (t - t0) / Math.max(t1 - t0, 1e-6);
  const series = { fps: points.map((p) => p.fps) };
  for (const s of ["invoke", "preprocess", "postprocess", "e2e"]) series[s] = points.map((p) => (p.p50_ms || {})[s]);
  g.strokeStyle = "#e5e7eb"; g.beginPath(); g.moveTo(pad, H - pad); g.lineTo(W - pad, H - pad); g.stroke();
  const legend = [];
  for (const [name, values] of Object.entries(series)) {
    const finite = values.filter((v) => typeof v === "number");
    if (!finite.length) continue;
    const max = Math.max(...finite) * 1.15 || 1;
    g.strokeStyle = COLORS[name]; g.lineWidth = name === "fps" ? 2.5 : 1.5; g.beginPath();
    let moved = false;
    values.forEach((v, i) => {
      if (typeof v !== "number") return;
      const px = x(points[i].ts), py = H - pad - (H - 2 * pad) * v / max;
      if (moved) g.lineTo(px, py); else { g.moveTo(px, py); moved = true; }
    });
    g.stroke();
    legend.push(name + (name === "fps" ? " " : " p50 ") + finite[finite.length - 1].toFixed(name === "fps" ? 1 : 2) + (name === "fps" ? "" : " ms"));
  }
  g.fillStyle = "#6b7280";
  g.fillText(Math.round(t1 - t0) + " s", W - pad - 30, H - 10);
  $("legend").textContent = legend.join(" · ") + " (each line scaled to its own maximum)";
}

async function history() {
  try {
    const h = await get("/v1/history");
    draw(h.points || []);
    $("detections").replaceChildren(...(h.detections || []).map((d) => {
      const li = document.createElement("li");
      li.textContent = new Date(d.ts * 1000).toLocaleTimeString() + "  frame " + d.frame + ": " +
        d.count + "× " + d.label + " " + d.score;
      return li;
    }));
  } catch (e) {
    $("legend").textContent = e.message;
  }
}

live();
status(); setInterval(status, 2000);
history(); setInterval(history, 2000);
