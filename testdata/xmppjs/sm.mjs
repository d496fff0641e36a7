// Interop check of XEP-0198 stream management over WebSocket with
// @xmpp/client 0.14 (its @xmpp/stream-management plugin), in Node.
//
// Run by cmd/ottr/interop_mobile_test.go: the client logs in with PLAIN
// through a TCP proxy whose control server (--control) can black-hole what
// the server sends and cut the connection; --to is a client that answers
// every chat message with "pong: " and its body. Steps:
//
//   setup   login; stream management enabled with resumption (an id).
//   step 1  presence and a message to --to; the server's <a/> acks both
//           (the plugin's "ack" events, sm.outbound); the answer arrives.
//   step 2  the proxy black-holes what the server sends; a second message,
//           whose answer (and ack) the server writes into the black hole;
//           the proxy cuts the connection (a reset, no <close/>).
//   step 3  the client reconnects by itself (@xmpp/reconnect) and resumes
//           (the plugin's "resumed" event, no new bind): the answer that
//           was in flight arrives exactly once, the first one is not sent
//           again; a third message after resuming is acked and answered.
//
// Exit status 0 only if every step worked ("all steps OK" on stdout);
// 1 with "FAIL: <step>: reason" on stderr, after every stanza in and out.
//
// Node 20 needs --experimental-websocket for its WebSocket; 22 has it.

import { parseArgs } from "node:util";

import { client, xml } from "@xmpp/client";

const { values: opts } = parseArgs({
  options: {
    service: { type: "string" },
    domain: { type: "string", default: "localhost" },
    username: { type: "string" },
    password: { type: "string" },
    to: { type: "string" },
    control: { type: "string" },
    timeout: { type: "string", default: "60" },
  },
});
for (const k of ["service", "username", "password", "to", "control"]) {
  if (!opts[k]) {
    console.error(`usage: node sm.mjs --service ws://… --username U --password PW --to JID --control URL (missing --${k})`);
    process.exit(2);
  }
}
if (typeof WebSocket !== "function") {
  console.error("FAIL: setup: no global WebSocket (Node 20: run with --experimental-websocket)");
  process.exit(1);
}

const deadline = Date.now() + Number(opts.timeout) * 1000;
// Backstop: a login that never ends cannot outlive the timeout.
setTimeout(() => {
  console.error(`FAIL: ${step}: hard timeout (${opts.timeout} s) hit`);
  process.exit(1);
}, Number(opts.timeout) * 1000 + 5000).unref();
let step = "setup";
const say = (text) => console.log(`${step}: ${text}`);

class CheckFailed extends Error {}

// waitFor polls cond (which may be async) until it returns a true value,
// failing at the overall deadline.
async function waitFor(cond, what) {
  for (;;) {
    const got = await cond();
    if (got) return got;
    if (Date.now() > deadline) {
      throw new CheckFailed(`timed out waiting for ${typeof what === "function" ? what() : what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function control(method, path) {
  const res = await fetch(opts.control + path, { method });
  if (!res.ok) throw new CheckFailed(`proxy control ${method} ${path}: HTTP ${res.status}`);
  return res.text();
}

const xmpp = client({
  service: opts.service,
  domain: opts.domain,
  resource: "xmppjs",
  username: opts.username,
  password: opts.password,
});
const sm = xmpp.streamManagement;

// What happened, for the checks.
const received = []; // bodies of chat messages received
const acked = []; // bodies (or element names) of stanzas the server acked
const failed = []; // stanzas the plugin gave up on
let resumed = 0;
let online = 0;
let sent = 0; // stanzas sent while stream management was on

const NS_SM = "urn:xmpp:sm:3";
let offered = null; // whether stream features offered NS_SM: after authentication, or inline in SASL2
let smFailed = null; // a <failed/> answer
xmpp.on("element", (el) => {
  console.error(`IN  ${el}`);
  if (el.is("features", "http://etherx.jabber.org/streams")) {
    // RFC 6120 SASL: <sm/> among the features after authentication;
    // SASL2 (XEP-0388): <sm/> inline in <authentication/>, enabled inside
    // the Bind2 request, no features to negotiate after it.
    const inline = el.getChild("authentication", "urn:xmpp:sasl:2")?.getChild("inline")?.getChild("sm", NS_SM);
    offered = offered || el.getChild("sm", NS_SM) !== undefined || inline !== undefined;
  } else if (el.is("failed", NS_SM)) {
    smFailed = el.toString();
  }
});
xmpp.on("send", (el) => console.error(`OUT ${el}`));
xmpp.on("status", (s) => console.error(`status: ${s}`));
xmpp.on("error", (err) => console.error(`error: ${err}`));
xmpp.on("online", () => online++);
xmpp.on("stanza", (st) => {
  if (st.is("message") && st.getChildText("body") !== null) {
    received.push(st.getChildText("body"));
  }
});
sm.on("ack", (st) => acked.push(st.getChildText("body") ?? st.name));
sm.on("fail", (st) => failed.push(st.toString()));
sm.on("resumed", () => resumed++);

const count = (list, item) => list.filter((x) => x === item).length;

async function send(stanza) {
  await xmpp.send(stanza);
  sent++;
}

function chat(body) {
  return xml("message", { to: opts.to, type: "chat" }, xml("body", {}, body));
}

async function run() {
  // "online" comes at bind; <enable/> goes out after it.
  await xmpp.start();
  await waitFor(() => sm.enabled || smFailed || !offered, "the answer to <enable/>");
  if (!offered) {
    throw new CheckFailed(`the server offered no stream management (no <sm xmlns="${NS_SM}"/> among the stream features after authentication, nor inline in SASL2)`);
  }
  if (smFailed) throw new CheckFailed(`<enable/> answered with ${smFailed}`);
  if (!sm.id) {
    throw new CheckFailed(`stream management not enabled with resumption (enabled=${sm.enabled}, id=${JSON.stringify(sm.id)})`);
  }
  say(`online as ${xmpp.jid}; stream management enabled, id=${sm.id}, max=${sm.max ?? "-"}`);

  step = "step 1 (acks)";
  const b1 = "xmppjs 1";
  await send(xml("presence"));
  await send(chat(b1));
  await waitFor(() => acked.includes(b1), `the server's <a/> for ${JSON.stringify(b1)}`);
  if (sm.outbound !== sent || sm.outbound_q.length !== 0) {
    throw new CheckFailed(`after the server's ack: sm.outbound=${sm.outbound}, ${sm.outbound_q.length} unacked; sent ${sent}`);
  }
  await waitFor(() => received.includes(`pong: ${b1}`), `the answer to ${JSON.stringify(b1)}`);
  say(`the server acked presence and message (sm.outbound=${sm.outbound}, acks for ${JSON.stringify(acked)}); answer received (sm.inbound=${sm.inbound})`);

  step = "step 2 (answer in flight, cut)";
  await control("POST", "/blackhole");
  const b2 = "xmppjs 2 (answer in flight)";
  await send(chat(b2));
  const dropped = await waitFor(async () => JSON.parse(await control("GET", "/stats")).discarded,
    "the server to write to the black-holed connection");
  const cut = (await control("POST", "/cut")).trim();
  say(`sent ${JSON.stringify(b2)} while the proxy black-holed the connection (${dropped} bytes from the server dropped); cut ${cut} connection(s)`);

  step = "step 3 (resume)";
  await waitFor(() => resumed > 0 || online > 1, "the client to reconnect and resume");
  if (resumed === 0) {
    throw new CheckFailed(`the client reconnected without resuming (a new session; plugin gave up on ${failed.length} stanzas)`);
  }
  await waitFor(() => received.includes(`pong: ${b2}`), () => `the answer to ${JSON.stringify(b2)} (received so far: ${JSON.stringify(received)})`);
  say(`resumed (sm.id=${sm.id}, sm.inbound=${sm.inbound}, sm.outbound=${sm.outbound}); the answer in flight arrived`);
  const b3 = "xmppjs 3 (after resume)";
  await send(chat(b3));
  await waitFor(() => received.includes(`pong: ${b3}`), `the answer to ${JSON.stringify(b3)}`);
  await waitFor(() => acked.includes(b3), `the server's <a/> for ${JSON.stringify(b3)}`);
  for (const b of [b1, b2, b3]) {
    if (count(received, `pong: ${b}`) !== 1) {
      throw new CheckFailed(`the answer to ${JSON.stringify(b)} arrived ${count(received, `pong: ${b}`)} times (received: ${JSON.stringify(received)})`);
    }
  }
  if (failed.length > 0) {
    throw new CheckFailed(`the plugin gave up on stanzas: ${failed.join(", ")}`);
  }
  if (sm.outbound !== sent || sm.outbound_q.length !== 0) {
    throw new CheckFailed(`at the end: sm.outbound=${sm.outbound}, ${sm.outbound_q.length} unacked; sent ${sent}`);
  }
  say(`each answer exactly once (${JSON.stringify(received)}); all ${sent} stanzas sent were acked`);

  step = "close";
  xmpp.reconnect.stop();
  await xmpp.stop();
  console.log("all steps OK");
}

try {
  await run();
  process.exit(0);
} catch (err) {
  console.error(`FAIL: ${step}: ${err instanceof CheckFailed ? err.message : err.stack}`);
  process.exit(1);
}
