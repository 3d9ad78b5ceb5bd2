// The chat page moe-server serves at GET /: one self-contained HTML document (inline CSS and
// JavaScript, no external resources, no build step). It streams replies from
// /v1/chat/completions (SSE), keeps the conversation, exposes the sampling fields and the API key,
// and shows a live panel: the reply's tok/s and time to first token measured in the page, latency
// percentiles and batch/queue/KV figures from /metrics, and the expert heatmap /stats/experts.svg
// (a short note where the server has none). Tested in headless Chromium by tests/server/browser.
#pragma once

#include <string_view>

namespace moe::server {

inline constexpr std::string_view kChatPage = R"moe_chat_page(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>moe-server chat</title>
<style>
:root{--bg:#f6f5f1;--fg:#1f2328;--muted:#5d646d;--card:#fff;--line:#d9d6cf;--accent:#2d5fa8;--accent-fg:#fff;
--user:#e8eefa;--bot:#fff;--err:#9b1c1c;--err-bg:#fde8e8;--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#16181c;--fg:#e6e6e3;--muted:#a0a6ad;--card:#1f2228;--line:#363a42;
--accent:#6d9be0;--accent-fg:#0b1220;--user:#23304a;--bot:#1f2228;--err:#ffb4b4;--err-bg:#4a1d1d}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.25rem 1rem;padding:.75rem 1rem;border-bottom:1px solid var(--line)}
header h1{font-size:1.15rem;margin:0}
header p{margin:0;color:var(--muted);font-size:.9rem}
main{display:grid;grid-template-columns:minmax(0,1fr) 20rem;gap:1rem;padding:1rem;max-width:76rem;margin:0 auto;align-items:start}
@media (max-width:52rem){main{grid-template-columns:minmax(0,1fr);padding:.5rem}}
section,aside>details,aside>div{background:var(--card);border:1px solid var(--line);border-radius:.6rem}
#chat{display:flex;flex-direction:column}
#log{overflow-y:auto;padding:1rem;display:flex;flex-direction:column;gap:.75rem;min-height:min(24rem,50vh);max-height:70vh}
#log:empty::before{content:"Say something to start the scene.";color:var(--muted)}
.msg{padding:.5rem .75rem;border-radius:.5rem;border:1px solid var(--line);max-width:92%}
.msg .who{display:block;font-size:.75rem;font-weight:600;letter-spacing:.04em;text-transform:uppercase;color:var(--muted)}
.msg .text{white-space:pre-wrap;overflow-wrap:anywhere}
.msg.user{align-self:flex-end;background:var(--user)}
.msg.assistant{align-self:flex-start;background:var(--bot)}
.msg.error{align-self:stretch;background:var(--err-bg);color:var(--err);border-color:var(--err)}
.msg .note{display:block;font-size:.75rem;color:var(--muted)}
.msg.streaming .text::after{content:"\258D";animation:blink 1s steps(2) infinite}
@keyframes blink{50%{opacity:0}}
form#composer{display:flex;gap:.5rem;padding:.75rem;border-top:1px solid var(--line);flex-wrap:wrap}
form#composer label{flex-basis:100%;font-size:.85rem;color:var(--muted)}
textarea{flex:1;min-width:12rem;min-height:3rem;resize:vertical;font:inherit}
input,textarea,button{font:inherit;color:inherit;background:var(--bg);border:1px solid var(--line);border-radius:.4rem;padding:.4rem .55rem}
button{cursor:pointer;background:var(--accent);color:var(--accent-fg);border-color:var(--accent);font-weight:600}
button.secondary{background:transparent;color:var(--fg);border-color:var(--line);font-weight:400}
button:disabled{opacity:.45;cursor:not-allowed}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
aside{display:flex;flex-direction:column;gap:1rem;min-width:0}
aside>details,aside>div{padding:.75rem}
summary,h2{font-size:1rem;font-weight:600;margin:0 0 .5rem}
summary{cursor:pointer}
.fields{display:grid;grid-template-columns:1fr 1fr;gap:.5rem}
.fields label{display:flex;flex-direction:column;font-size:.8rem;color:var(--muted);gap:.15rem}
.fields label.wide{grid-column:1/-1}
.fields input{width:100%}
dl{display:grid;grid-template-columns:minmax(0,1fr) auto;gap:.2rem .75rem;margin:0;font-size:.9rem}
dt{color:var(--muted)}
dd{margin:0;font-family:var(--mono);font-size:.85rem;text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
h3{font-size:.8rem;color:var(--muted);margin:.75rem 0 .25rem;text-transform:uppercase;letter-spacing:.04em}
#heatmap{width:100%;height:auto;display:block;border-radius:.3rem;background:#fff}
#heatmap-note{font-size:.85rem;color:var(--muted);margin:.25rem 0 0}
#status{font-size:.85rem;color:var(--muted);padding:0 .75rem .5rem;min-height:1.5em}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
</style>
</head>
<body>
<header>
  <h1>moe-server chat</h1>
  <p>model <strong id="model-name">…</strong> · streaming from <code>/v1/chat/completions</code></p>
</header>
<main>
<section id="chat" aria-label="Conversation">
  <div id="log" role="log" aria-live="polite" aria-relevant="additions"></div>
  <div id="status" role="status"></div>
  <form id="composer">
    <label for="prompt">Your message (Enter sends, Shift+Enter adds a line)</label>
    <textarea id="prompt" name="prompt" rows="2" placeholder="But soft, what light through yonder window breaks?" required></textarea>
    <button type="submit" id="send">Send</button>
    <button type="button" id="stop" class="secondary" disabled>Stop</button>
    <button type="button" id="clear" class="secondary">New chat</button>
  </form>
</section>
<aside>
  <details open id="settings">
    <summary>Sampling</summary>
    <div class="fields">
      <label>temperature<input id="temperature" type="number" min="0" max="2" step="0.05" value="0.8"></label>
      <label>top_p<input id="top_p" type="number" min="0.01" max="1" step="0.01" value="0.95"></label>
      <label>top_k<input id="top_k" type="number" min="0" step="1" value="40"></label>
      <label>max_tokens<input id="max_tokens" type="number" min="1" step="1" value="120"></label>
      <label>seed (blank: random)<input id="seed" type="number" step="1" placeholder="random"></label>
      <label>stop (\n for newline)<input id="stop_seq" type="text" value="\n\n"></label>
      <label class="wide">system message (optional)<input id="system" type="text" placeholder="none"></label>
      <label class="wide">API key (servers started with --api-key)<input id="api_key" type="password" autocomplete="off" placeholder="none"></label>
    </div>
  </details>
  <div id="panel" aria-labelledby="panel-title">
    <h2 id="panel-title">Live</h2>
    <h3>This reply</h3>
    <dl>
      <dt>tokens</dt><dd id="m-tokens">–</dd>
      <dt>tok/s (since sent)</dt><dd id="m-tps">–</dd>
      <dt>time to first token</dt><dd id="m-ttft">–</dd>
    </dl>
    <h3>Server (/metrics)</h3>
    <dl>
      <dt>TTFT p50 / p99</dt><dd id="s-ttft">–</dd>
      <dt>inter-token p50 / p99</dt><dd id="s-itl">–</dd>
      <dt>request p50 / p99</dt><dd id="s-e2e">–</dd>
      <dt>active / slots</dt><dd id="s-active">–</dd>
      <dt>queue</dt><dd id="s-queue">–</dd>
      <dt>mean batch</dt><dd id="s-batch">–</dd>
      <dt>KV reserved</dt><dd id="s-kv">–</dd>
      <dt>KV allocated</dt><dd id="s-kvmem">–</dd>
      <dt>generated tok/s</dt><dd id="s-gen">–</dd>
    </dl>
    <p id="metrics-note" class="sr" aria-live="polite"></p>
    <h3>Experts</h3>
    <a id="heatmap-link" target="_blank" title="Open the heatmap full size"><img id="heatmap" alt="Expert routing heatmap: layers by experts" hidden></a>
    <p id="heatmap-note">Loading the expert heatmap…</p>
  </div>
</aside>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const state = { history: [], controller: null, model: null, lastGen: null, heatmapUrl: null, timer: null };
const keyStore = window.sessionStorage;
$("api_key").value = keyStore.getItem("moe-api-key") || "";
$("api_key").addEventListener("change", () => { keyStore.setItem("moe-api-key", $("api_key").value); loadModel(); refreshAll(); });

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const key = $("api_key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}
async function errorText(res) {
  try {
    const j = await res.json();
    if (j && j.error && j.error.message) return "HTTP " + res.status + ": " + j.error.message;
  } catch (e) {}
  return "HTTP " + res.status + " " + res.statusText;
}
function setStatus(text) { $("status").textContent = text; }

function addMessage(role, text, who) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  const w = document.createElement("span");
  w.className = "who";
  w.textContent = who || (role === "user" ? "you" : role === "assistant" ? (state.model || "model") : "error");
  const t = document.createElement("span");
  t.className = "text";
  t.textContent = text;
  div.append(w, t);
  $("log").append(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}
function addNote(div, text) {
  const n = document.createElement("span");
  n.className = "note";
  n.textContent = text;
  div.append(n);
}

async function loadModel() {
  try {
    const res = await fetch("/v1/models", { headers: headers(false) });
    if (!res.ok) { $("model-name").textContent = "(" + (await errorText(res)) + ")"; return; }
    const j = await res.json();
    state.model = j.data && j.data[0] ? j.data[0].id : null;
    $("model-name").textContent = state.model || "?";
  } catch (e) { $("model-name").textContent = "(unreachable)"; }
}

function numberField(id, parse) {
  const v = $(id).value.trim();
  if (v === "") return undefined;
  const n = parse(v);
  return Number.isFinite(n) ? n : undefined;
}
function requestBody() {
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  for (const m of state.history) messages.push(m);
  const body = { model: state.model, messages, stream: true, stream_options: { include_usage: true } };
  const fields = { temperature: parseFloat, top_p: parseFloat, top_k: (s) => parseInt(s, 10),
                   max_tokens: (s) => parseInt(s, 10), seed: (s) => parseInt(s, 10) };
  for (const [k, parse] of Object.entries(fields)) {
    const v = numberField(k, parse);
    if (v !== undefined) body[k] = v;
  }
  const stop = $("stop_seq").value.replace(/\\n/g, "\n").replace(/\\t/g, "\t");
  if (stop) body.stop = [stop];
  return body;
}

function fmtSeconds(s) {
  if (!Number.isFinite(s)) return "–";
  return s < 1 ? (s * 1000).toFixed(s < 0.01 ? 1 : 0) + " ms" : s.toFixed(2) + " s";
}
function showReply(r) {
  $("m-tokens").textContent = String(r.tokens);
  $("m-ttft").textContent = r.first ? fmtSeconds((r.first - r.start) / 1000) : "–";
  const now = r.end || performance.now();
  // Tokens over the time since the request was sent (TTFT included): chunks reach the page in
  // bursts, so a rate over the time since the first one overstates short replies.
  if (r.first && now > r.start) $("m-tps").textContent = (r.tokens / ((now - r.start) / 1000)).toFixed(1);
}

async function send(text) {
  if (!state.model) await loadModel();
  state.history.push({ role: "user", content: text });
  addMessage("user", text);
  const div = addMessage("assistant", "");
  div.classList.add("streaming");
  const out = div.querySelector(".text");
  const controller = new AbortController();
  state.controller = controller;
  $("send").disabled = true;
  $("stop").disabled = false;
  const reply = { start: performance.now(), first: 0, end: 0, tokens: 0, text: "" };
  $("m-tokens").textContent = "0"; $("m-tps").textContent = "…"; $("m-ttft").textContent = "…";
  setStatus("Generating…");
  startRefresh(1000);
  let finish = null, failure = null;
  try {
    const res = await fetch("/v1/chat/completions", { method: "POST", headers: headers(true),
                                                      body: JSON.stringify(requestBody()), signal: controller.signal });
    if (!res.ok) throw new Error(await errorText(res));
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const frame = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        for (const line of frame.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message || "the server reported an error");
          if (j.usage && j.usage.completion_tokens !== undefined) reply.tokens = j.usage.completion_tokens;
          const c = j.choices && j.choices[0];
          if (!c) continue;
          if (c.delta && c.delta.content) {
            if (!reply.first) reply.first = performance.now();
            reply.tokens += 1;
            reply.text += c.delta.content;
            out.textContent = reply.text;
            $("log").scrollTop = $("log").scrollHeight;
          }
          if (c.finish_reason) finish = c.finish_reason;
        }
      }
      showReply(reply);
    }
  } catch (e) {
    failure = e;
  }
  reply.end = performance.now();
  showReply(reply);
  div.classList.remove("streaming");
  state.controller = null;
  $("send").disabled = false;
  $("stop").disabled = true;
  if (failure && failure.name === "AbortError") {
    addNote(div, "stopped");
    setStatus("Stopped.");
  } else if (failure) {
    if (!reply.text) div.remove();
    addMessage("error", failure.message);
    setStatus("Failed.");
    state.history.pop();  // the turn is not kept, so a retry does not send it twice
    startRefresh(5000);
    refreshAll();
    return;
  } else {
    if (finish === "length") addNote(div, "cut at max_tokens");
    setStatus("Done in " + fmtSeconds((reply.end - reply.start) / 1000) + ".");
  }
  state.history.push({ role: "assistant", content: reply.text });
  startRefresh(5000);
  refreshAll();
}

// Prometheus text: name -> [{labels, value}].
function parseProm(text) {
  const m = new Map();
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const r = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!r) continue;
    const labels = {};
    if (r[3]) for (const p of r[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]] = p[2];
    const v = r[4] === "+Inf" ? Infinity : parseFloat(r[4]);
    if (!m.has(r[1])) m.set(r[1], []);
    m.get(r[1]).push({ labels, value: v });
  }
  return m;
}
function scalar(m, name) { const s = m.get(name); return s && s.length ? s[0].value : NaN; }
// histogram_quantile: linear inside the bucket that holds the rank.
function quantile(m, name, q) {
  const b = (m.get(name + "_bucket") || []).map((s) => [s.labels.le === "+Inf" ? Infinity : parseFloat(s.labels.le), s.value])
                                          .sort((x, y) => x[0] - y[0]);
  if (!b.length) return NaN;
  const total = b[b.length - 1][1];
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let prevLe = 0, prevCount = 0;
  for (const [le, count] of b) {
    if (count >= rank && count > prevCount) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * Math.min(1, Math.max(0, (rank - prevCount) / (count - prevCount)));
    }
    prevLe = le === Infinity ? prevLe : le;
    prevCount = count;
  }
  return prevLe;
}
function pair(m, name) {
  const a = quantile(m, name, 0.5), b = quantile(m, name, 0.99);
  return Number.isFinite(a) ? fmtSeconds(a) + " / " + fmtSeconds(b) : "no data";
}
async function refreshMetrics() {
  try {
    const res = await fetch("/metrics", { headers: headers(false), cache: "no-store" });
    if (!res.ok) { $("metrics-note").textContent = await errorText(res); $("s-ttft").textContent = "HTTP " + res.status; return; }
    const m = parseProm(await res.text());
    $("s-ttft").textContent = pair(m, "moe_time_to_first_token_seconds");
    $("s-itl").textContent = pair(m, "moe_inter_token_latency_seconds");
    $("s-e2e").textContent = pair(m, "moe_request_latency_seconds");
    $("s-active").textContent = scalar(m, "moe_active_sequences") + " / " + scalar(m, "moe_batch_slots");
    $("s-queue").textContent = String(scalar(m, "moe_queue_depth"));
    const bc = scalar(m, "moe_batch_size_count");
    $("s-batch").textContent = bc > 0 ? (scalar(m, "moe_batch_size_sum") / bc).toFixed(2) : "no data";
    $("s-kv").textContent = scalar(m, "moe_kv_tokens_reserved") + " / " + scalar(m, "moe_kv_tokens_budget");
    const kvBytes = scalar(m, "moe_kv_cache_bytes");
    $("s-kvmem").textContent = scalar(m, "moe_kv_tokens_allocated") + " tok, " +
                               (kvBytes >= 1 << 30 ? (kvBytes / 2 ** 30).toFixed(2) + " GiB" : (kvBytes / 2 ** 20).toFixed(1) + " MiB");
    const gen = scalar(m, "moe_generation_tokens_total"), t = performance.now();
    if (state.lastGen && t > state.lastGen.t) {
      $("s-gen").textContent = ((gen - state.lastGen.gen) / ((t - state.lastGen.t) / 1000)).toFixed(1);
    }
    state.lastGen = { gen, t };
    $("panel").dataset.metricsUpdated = String(Date.now());
  } catch (e) {
    $("s-ttft").textContent = "unreachable";
  }
}
async function refreshHeatmap() {
  const img = $("heatmap"), note = $("heatmap-note");
  try {
    // Fetched (not an <img src>) so that the API key goes with it.
    const res = await fetch("/stats/experts.svg", { headers: headers(false), cache: "no-store" });
    if (!res.ok) {
      img.hidden = true;
      note.hidden = false;
      note.textContent = res.status === 404 ? "This server has no expert heatmap yet (/stats/experts.svg: 404)."
                                            : "Expert heatmap unavailable: " + (await errorText(res));
      return;
    }
    const url = URL.createObjectURL(await res.blob());
    img.onload = () => { if (state.heatmapUrl && state.heatmapUrl !== url) URL.revokeObjectURL(state.heatmapUrl); state.heatmapUrl = url; };
    img.src = url;
    $("heatmap-link").href = url;
    img.hidden = false;
    note.hidden = true;
  } catch (e) {
    img.hidden = true;
    note.hidden = false;
    note.textContent = "Expert heatmap unavailable (server unreachable).";
  }
}
let refreshing = false;
async function refreshAll() {
  if (refreshing) return;
  refreshing = true;
  try { await Promise.all([refreshMetrics(), refreshHeatmap()]); } finally { refreshing = false; }
}
function startRefresh(ms) {
  if (state.timer) clearInterval(state.timer);
  state.timer = setInterval(() => { refreshAll(); if (state.controller) return; }, ms);
}

$("composer").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || state.controller) return;
  $("prompt").value = "";
  send(text);
});
$("prompt").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); $("composer").requestSubmit(); }
});
$("stop").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
$("clear").addEventListener("click", () => {
  if (state.controller) state.controller.abort();
  state.history = [];
  $("log").replaceChildren();
  setStatus("");
});
loadModel();
refreshAll();
startRefresh(5000);
</script>
</body>
</html>
)moe_chat_page";

}  // namespace moe::server
