// Drives Debian's chromium (headless, through playwright-core; no browser is
// downloaded) to the test page of cmd/ottr/browser_test.go and waits until
// the page has logged in, sent its message, got the reply and closed.
//
//   node run.mjs --url PAGE --transport ws|bosh --endpoint HOST:PORT \
//       --jid alice@localhost/browser --to bob@localhost --token TOKEN \
//       --body TEXT [--room ROOM] [--screenshot FILE] [--timeout SECONDS]
//       [--chromium PATH]
//
// It exits 0 when the page reaches state "closed" after a reply, 1 otherwise,
// printing the page's log lines and its console (the XMPP traffic) on failure.
// The screenshot is written in both cases.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";

const { values: opt } = parseArgs({
  options: {
    url: { type: "string" },
    transport: { type: "string" },
    endpoint: { type: "string" },
    jid: { type: "string" },
    to: { type: "string" },
    token: { type: "string" },
    body: { type: "string", default: "hello from the browser" },
    room: { type: "string", default: "" },
    screenshot: { type: "string" },
    timeout: { type: "string", default: "30" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});

function die(msg) {
  console.error("run.mjs: " + msg);
  process.exit(1);
}

for (const k of ["url", "transport", "endpoint", "jid", "to", "token"]) {
  if (!opt[k]) die(`--${k} is required`);
}
const paths = { ws: "ws://%s/xmpp-websocket", bosh: "http://%s/http-bind" };
if (!paths[opt.transport]) die(`--transport must be ws or bosh, not ${JSON.stringify(opt.transport)}`);
const service = paths[opt.transport].replace("%s", opt.endpoint);
const timeoutMs = Number(opt.timeout) * 1000;

const page_url = new URL(opt.url);
for (const [k, v] of Object.entries({ service, jid: opt.jid, token: opt.token, to: opt.to, body: opt.body })) {
  page_url.searchParams.set(k, v);
}
if (opt.room) page_url.searchParams.set("room", opt.room);

// launch() gives chromium a fresh temporary --user-data-dir of its own and
// removes it on close; the flags keep it off the network except loopback.
const browser = await chromium.launch({
  executablePath: opt.chromium,
  headless: true,
  timeout: timeoutMs,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const consoleLog = [];
let ok = false;
let why = "";
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 420 } });
  // Strophe's debug lines (its request bookkeeping) are left out; the
  // XMPP traffic is logged by the page as SENT and RECV lines.
  page.on("console", (m) => m.type() !== "debug" && consoleLog.push(`[${m.type()}] ${m.text()}`));
  // An uncaught error in the page's script ends the wait at once.
  let pageError;
  const pageErrored = new Promise((resolve) => {
    page.on("pageerror", (e) => {
      consoleLog.push(`[pageerror] ${e.message}`);
      pageError ??= e.message;
      resolve();
    });
  });
  page.on("requestfailed", (r) => consoleLog.push(`[requestfailed] ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));

  await page.goto(page_url.href, { timeout: timeoutMs });
  try {
    await Promise.race([
      page.waitForFunction(
        () => ["closed", "failed"].includes(document.body.dataset.state),
        null,
        { timeout: timeoutMs, polling: 100 },
      ),
      pageErrored,
    ]);
  } catch (e) {
    why = `the page did not finish within ${opt.timeout}s`;
  }
  if (pageError) why = `uncaught error in the page: ${pageError}`;
  const state = await page.evaluate(() => document.body.dataset.state);
  const lines = await page.evaluate(() => [...document.querySelectorAll("#log li")].map((li) => li.textContent));
  if (!pageError && state === "closed" && lines.some((l) => l.startsWith("got reply: "))) {
    ok = true;
  } else if (!why) {
    why = `the page ended in state ${JSON.stringify(state)}`;
  }
  if (opt.screenshot) {
    mkdirSync(dirname(opt.screenshot), { recursive: true });
    await page.screenshot({ path: opt.screenshot });
  }
  console.log(`${opt.transport}: state ${state}`);
  for (const l of lines) console.log(`${opt.transport}: ${l}`);
  if (opt.screenshot) console.log(`${opt.transport}: screenshot ${opt.screenshot}`);
} catch (e) {
  why = String(e?.stack || e);
} finally {
  await browser.close();
}

if (!ok) {
  console.error(`run.mjs: FAIL (${opt.transport}): ${why}`);
  console.error("page console:");
  for (const l of consoleLog) console.error("  " + l);
  process.exit(1);
}
