// The chat page (GET /) in a real browser: headless Debian chromium driven by playwright-core.
// Starts moe-server twice on free loopback ports with the bundled model (one without and one
// with --api-key), then checks that a reply streams in and grows, that the live panel fills in
// (tok/s and time to first token measured by the page, the /metrics figures, the heatmap or its
// note), that Stop aborts a long reply (and the server counts the cancellation), the API-key flow
// (401 shown as an error, the right key works), labels and phone width; saves a screenshot.
//   node chat_page.test.mjs --server BIN --model DIR --modules NODE_MODULES --chromium BIN --out DIR
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

const arg = (name) => {
  const i = process.argv.indexOf("--" + name);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`missing --${name}`);
  return process.argv[i + 1];
};
const serverBin = arg("server"), modelDir = arg("model"), outDir = arg("out");
const { chromium } = createRequire(join(arg("modules"), "package.json"))("playwright-core");

const started = Date.now();
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
let failures = 0;
function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures++;
}

// moe-server on a free port; resolves with {url, proc} once it prints where it listens.
function startServer(extra) {
  const proc = spawn(serverBin, ["--model", modelDir, "--port", "0", "--parallel", "2", "--threads", "1", ...extra],
                     { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, OMP_WAIT_POLICY: "passive" } });
  let stderr = "";
  proc.stderr.on("data", (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("moe-server did not start in 20 s: " + stderr)), 20000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve({ url: m[1], proc }); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`moe-server exited (${code}): ${stderr}`)); });
  });
}
async function metric(base, name, key) {
  const res = await fetch(base + "/metrics", { headers: key ? { Authorization: "Bearer " + key } : {} });
  const m = new RegExp("^" + name + " (\\S+)$", "m").exec(await res.text());
  return m ? Number(m[1]) : NaN;
}

// Records the reply's text length at every DOM change of the conversation, in the page.
async function watchReplies(page) {
  await page.evaluate(() => {
    window.__lengths = [];
    const log = document.getElementById("log");
    new MutationObserver(() => {
      const last = log.querySelector(".msg.assistant:last-of-type .text");
      if (last) {
        window.__lengths.push([last.textContent.length, last.parentElement.classList.contains("streaming"),
                               !document.getElementById("stop").disabled]);
      }
    }).observe(log, { childList: true, subtree: true, characterData: true });
  });
}
async function sendPrompt(page, text) {
  await page.fill("#prompt", text);
  await page.click("#send");
}
const lastAssistant = (page) => page.locator("#log .msg.assistant").last();
// Generous: the sanitizer build runs the server at -O0.
const waitIdle = (page, timeout = 60000) => page.waitForSelector("#send:not([disabled])", { timeout });

const userData = mkdtempSync(join(tmpdir(), "moe-chat-page-"));
const servers = [];
let context;
try {
  // The open server runs the scalar reference backend (about 6x slower than cpu here): a long
  // reply then streams for seconds, so that the page renders it in many pieces and is still
  // receiving it when it presses Stop, however busy the machine (with cpu, chromium delivered
  // the chunks of a 0.6 s reply in two bursts when other builds ran).
  const [open, guarded] = await Promise.all([startServer(["--backend", "reference"]),
                                             startServer(["--api-key", "s3cret-key"])]);
  servers.push(open.proc, guarded.proc);
  log(`servers at ${open.url} and ${guarded.url} (api key)`);

  context = await chromium.launchPersistentContext(userData, {
    executablePath: arg("chromium"),
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1100, height: 760 },
  });
  const page = context.pages()[0] || (await context.newPage());
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.on("console", (m) => {
    // The heatmap's 404 (while the server has no /stats/experts.svg) is expected.
    if (m.type() === "error" && !/status of 404/.test(m.text())) consoleErrors.push(m.text());
  });
  const externalRequests = [];
  page.on("request", (r) => { if (!r.url().startsWith(open.url) && !r.url().startsWith(guarded.url) && !r.url().startsWith("blob:")) externalRequests.push(r.url()); });

  // ---- the page, its labels, the model name -------------------------------------------------
  await page.goto(open.url + "/");
  await page.waitForFunction(() => document.getElementById("model-name").textContent === "shakespeare-moe", null,
                             { timeout: 10000 });
  check(true, "page loads and names the model from /v1/models");
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, textarea, button")]
      .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.textContent.trim())
      .map((e) => e.id));
  check(unlabelled.length === 0, `every control has a label (unlabelled: ${unlabelled.join(", ") || "none"})`);
  await page.waitForFunction(() => document.getElementById("s-active").textContent.includes("/"), null, { timeout: 10000 });
  const metricsBefore = await page.evaluate(() => document.getElementById("panel").dataset.metricsUpdated || "");

  // ---- two short turns: the conversation is sent back with each request -----------------------
  const posted = [];
  page.on("request", (r) => { if (r.url().endsWith("/v1/chat/completions")) posted.push(JSON.parse(r.postData())); });
  await page.fill("#max_tokens", "24");
  await page.fill("#seed", "7");
  await sendPrompt(page, "Good morrow, fair lady.");
  await waitIdle(page);
  const first = await lastAssistant(page).locator(".text").textContent();
  await sendPrompt(page, "What say you?");
  await waitIdle(page);
  check((await page.locator("#log .msg.user").count()) === 2 && (await page.locator("#log .msg.assistant").count()) === 2,
        "two turns in the conversation");
  const second = posted[1] || { messages: [] };
  check(first.length > 0 && second.messages.length === 3 && second.messages[1].role === "assistant" &&
        second.messages[1].content === first && second.stream === true && second.seed === 7 &&
        second.max_tokens === 24 && second.temperature === 0.8 && second.top_k === 40 &&
        JSON.stringify(second.stop) === JSON.stringify(["\n\n"]),
        "the second request carries the history and the sampling fields");
  // The screenshot (docs/chat-page.png is one): the scene so far, the panel, the heatmap.
  await page.waitForFunction(() => /ms|s/.test(document.getElementById("s-ttft").textContent), null, { timeout: 10000 });
  await page.waitForFunction(() => { const i = document.getElementById("heatmap"); return i.hidden || i.naturalWidth > 0; },
                             null, { timeout: 10000 });
  await page.screenshot({ path: join(outDir, "chat-page.png"), fullPage: true });
  await page.click("#clear");
  check((await page.locator("#log .msg").count()) === 0, "New chat clears the conversation");

  // ---- a long streamed reply: rendered as it arrives; the live panel ---------------------------
  await page.fill("#max_tokens", "300");
  await page.fill("#stop_seq", "");  // no stop string: a long reply, so its growth is visible
  await watchReplies(page);
  const sentAt = Date.now();
  await sendPrompt(page, "But soft, what light through yonder window breaks?");
  await page.waitForFunction(() => {
    const t = document.querySelector("#log .msg.assistant:last-of-type .text");
    return t && t.textContent.length > 0;
  }, null, { timeout: 30000 });
  log(`first text after ${Date.now() - sentAt} ms`);
  await waitIdle(page);
  log(`reply done after ${Date.now() - sentAt} ms`);
  const lengths = await page.evaluate(() => window.__lengths);
  const streamed = lengths.filter(([n, streaming]) => streaming && n > 0);
  const reply = await lastAssistant(page).locator(".text").textContent();
  const sizes = streamed.map(([n]) => n);
  // Shown before it was complete, and growing (how many pieces depends on how the browser's
  // network stack batches the chunks: 2 to 25 seen on 2 busy cores).
  const grows = sizes.every((n, i) => i === 0 || n >= sizes[i - 1]) && sizes.length > 0 && sizes[0] < reply.length;
  check(grows, `text rendered in pieces as it arrived (${new Set(sizes).size} sizes while streaming, first ${sizes[0]} ` +
               `of ${reply.length} characters)`);
  check(streamed.length > 0 && streamed.every(([, , stop]) => stop), "Stop is enabled while streaming");
  check(reply.length > 100, `a reply of ${reply.length} characters`);
  const tps = await page.textContent("#m-tps"), ttft = await page.textContent("#m-ttft");
  const tokens = await page.textContent("#m-tokens");
  check(Number(tps) > 0, `tok/s of the reply shown: ${tps}`);
  check(/^\d+(\.\d+)? (ms|s)$/.test(ttft), `time to first token shown: ${ttft}`);
  check(Number(tokens) > 100, `tokens of the reply: ${tokens}`);
  await page.waitForFunction((before) => (document.getElementById("panel").dataset.metricsUpdated || "") !== before,
                             metricsBefore, { timeout: 10000 });
  await page.waitForFunction(() => /ms|s/.test(document.getElementById("s-ttft").textContent), null, { timeout: 10000 });
  const panel = await page.evaluate(() => Object.fromEntries(
    ["s-ttft", "s-itl", "s-e2e", "s-active", "s-queue", "s-batch", "s-kv", "s-kvmem"].map((id) => [id, document.getElementById(id).textContent])));
  check(/ (ms|s) \/ /.test(panel["s-ttft"]) && / (ms|s) \/ /.test(panel["s-itl"]) && / (ms|s) \/ /.test(panel["s-e2e"]),
        `latency percentiles from /metrics: TTFT ${panel["s-ttft"]}, ITL ${panel["s-itl"]}, request ${panel["s-e2e"]}`);
  check(/^\d+ \/ 2$/.test(panel["s-active"]) && /^\d+$/.test(panel["s-queue"]) && Number(panel["s-batch"]) >= 1 &&
        /^\d+ \/ \d+$/.test(panel["s-kv"]) && /^[1-9]\d* tok, \d+\.\d+ [MG]iB$/.test(panel["s-kvmem"]),
        `batch figures: active ${panel["s-active"]}, queue ${panel["s-queue"]}, mean batch ${panel["s-batch"]}, ` +
        `KV ${panel["s-kv"]}, allocated ${panel["s-kvmem"]}`);
  const svgStatus = (await fetch(open.url + "/stats/experts.svg")).status;
  if (svgStatus === 404) {
    const note = await page.textContent("#heatmap-note");
    check((await page.isHidden("#heatmap")) && /404/.test(note), `no heatmap route yet: the note says so ("${note}")`);
  } else {
    await page.waitForFunction(() => { const i = document.getElementById("heatmap"); return !i.hidden && i.naturalWidth > 0; },
                               null, { timeout: 10000 });
    check(svgStatus === 200, "the expert heatmap is drawn from /stats/experts.svg");
  }

  // ---- Stop aborts a long reply; the server cancels its sequence --------------------------------
  await page.click("#clear");
  await page.fill("#max_tokens", "460");
  const cancelledBefore = await metric(open.url, "moe_sequences_cancelled_total");
  // The reply takes well under a second on a fast machine, longer than a round trip of the test
  // driver may: the page itself presses Stop (a DOM click on the button) when the first text shows.
  await page.evaluate(() => {
    const log = document.getElementById("log");
    const obs = new MutationObserver(() => {
      const m = log.querySelector(".msg.assistant:last-of-type");
      if (m && m.classList.contains("streaming") && m.querySelector(".text").textContent.length > 0) {
        obs.disconnect();
        window.__stoppedAt = m.querySelector(".text").textContent.length;
        document.getElementById("stop").click();
      }
    });
    obs.observe(log, { childList: true, subtree: true, characterData: true });
  });
  await sendPrompt(page, "Speak again, bright angel.");
  await waitIdle(page);
  const stoppedText = await lastAssistant(page).locator(".text").textContent();
  check(stoppedText.length > 0 && stoppedText.length < 600,
        `the reply ends where Stop was pressed (${await page.evaluate(() => window.__stoppedAt)} characters then, ` +
        `${stoppedText.length} kept; 460 tokens are about 1,200)`);
  const note = await lastAssistant(page).locator(".note").textContent().catch(() => "");
  check(note === "stopped", `Stop ends the reply (note: "${note}")`);
  check(await page.isDisabled("#stop"), "Stop is disabled again");
  let cancelled = cancelledBefore;
  for (let i = 0; i < 50 && cancelled === cancelledBefore; i++) {
    await new Promise((r) => setTimeout(r, 100));
    cancelled = await metric(open.url, "moe_sequences_cancelled_total");
  }
  check(cancelled === cancelledBefore + 1, `the server cancelled the aborted sequence (${cancelledBefore} -> ${cancelled})`);

  // ---- phone width ----------------------------------------------------------------------------
  await page.setViewportSize({ width: 390, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `no horizontal scrolling at 390 px (overflow ${overflow} px)`);
  await page.setViewportSize({ width: 1100, height: 760 });

  // ---- a server with --api-key ----------------------------------------------------------------
  const page2 = await context.newPage();
  page2.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page2.goto(guarded.url + "/");  // the page itself needs no key
  await page2.fill("#max_tokens", "16");
  await page2.fill("#temperature", "0");  // greedy: the keyed reply below is the same, non-empty text every run
  await sendPrompt(page2, "Who is there?");
  await page2.waitForSelector("#log .msg.error", { timeout: 10000 });
  const noKey = await page2.textContent("#log .msg.error .text");
  check(/401/.test(noKey) && /API key/.test(noKey), `without a key: "${noKey}"`);
  check((await page2.locator("#log .msg.assistant").count()) === 0, "no empty reply is left behind");
  await waitIdle(page2);
  await page2.fill("#api_key", "wrong");
  await page2.dispatchEvent("#api_key", "change");
  await sendPrompt(page2, "Who is there?");
  await page2.waitForFunction(() => document.querySelectorAll("#log .msg.error").length === 2, null, { timeout: 10000 });
  const wrong = await page2.locator("#log .msg.error .text").last().textContent();
  check(/401/.test(wrong) && /Incorrect API key/.test(wrong), `with a wrong key: "${wrong}"`);
  await waitIdle(page2);
  await page2.fill("#api_key", "s3cret-key");
  await page2.dispatchEvent("#api_key", "change");
  await sendPrompt(page2, "Who is there?");
  await waitIdle(page2);
  const keyed = await lastAssistant(page2).locator(".text").textContent().catch(() => "");
  check(keyed.length > 0 && (await page2.locator("#log .msg.error").count()) === 2,
        `with the right key the reply streams (${keyed.length} characters)`);
  await page2.waitForFunction(() => document.getElementById("model-name").textContent === "shakespeare-moe", null,
                              { timeout: 10000 });
  check(true, "with the key the model name loads");
  await page2.waitForFunction(() => /\d+ \/ \d+/.test(document.getElementById("s-kv").textContent), null, { timeout: 10000 });
  check(true, "with the key the metrics panel fills in");

  check(consoleErrors.length === 0, `no script errors (${consoleErrors.join(" | ") || "none"})`);
  check(externalRequests.length === 0, `no request leaves the server (${externalRequests.join(", ") || "none"})`);
} catch (e) {
  console.log("FAIL " + (e && e.stack ? e.stack : e));
  failures++;
} finally {
  if (context) await context.close().catch(() => {});
  for (const p of servers) p.kill("SIGTERM");
  rmSync(userData, { recursive: true, force: true });
}
log(failures === 0 ? "all checks passed" : `${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
