// Interop check of XEP-0388 SASL2, XEP-0386 Bind2 and XEP-0484 FAST with
// @xmpp/client 0.14 (its sasl2, bind2 and fast code), in Node, over
// ottr's WebSocket endpoint.
//
// Run by cmd/ottr/interop_fast_test.go with an app token (X-TOKEN) minted
// for --username. @xmpp/client has no X-TOKEN mechanism: this script
// registers one on its SASL factory (PLAIN-framed: authzid NUL authcid NUL
// token). Steps:
//
//   step 1  log in with X-TOKEN over SASL2, bound inline by Bind2; the
//           client asks for a FAST token (HT-SHA-256-NONE), the server's
//           <success/> carries it; disconnect.
//   step 2  a new client (same user-agent id) with the FAST token only,
//           no app token: it logs in with HT-SHA-256-NONE (X-TOKEN is not
//           tried), the server's final message verified by the client,
//           and gets the next token (rotation); disconnect.
//   step 3  the rotated token logs in the same way.
//
// Exit status 0 only if every step worked ("all steps OK" on stdout); 1
// with "FAIL: <step>: reason" on stderr, after every element in and out.
//
// Node 20 needs --experimental-websocket for its WebSocket; 22 has it.

import { parseArgs } from "node:util";

import { client, xml } from "@xmpp/client";

const { values: opts } = parseArgs({
  options: {
    service: { type: "string" },
    domain: { type: "string", default: "localhost" },
    username: { type: "string" },
    token: { type: "string" },
    timeout: { type: "string", default: "60" },
  },
});
for (const k of ["service", "username", "token"]) {
  if (!opts[k]) {
    console.error(`usage: node fast.js --service ws://… --username U --token APP-TOKEN (missing --${k})`);
    process.exit(2);
  }
}
if (typeof WebSocket !== "function") {
  console.error("FAIL: setup: no global WebSocket (Node 20: run with --experimental-websocket)");
  process.exit(1);
}
setTimeout(() => {
  console.error(`FAIL: ${step}: hard timeout (${opts.timeout} s) hit`);
  process.exit(1);
}, Number(opts.timeout) * 1000).unref();

let step = "setup";
const say = (text) => console.log(`${step}: ${text}`);
class CheckFailed extends Error {}

// One client, one user-agent id, over every connection: FAST tokens are
// bound to it.
const agentID = globalThis.crypto.randomUUID();
const userAgent = () =>
  xml("user-agent", { id: agentID }, xml("software", {}, "ottr fast.js"), xml("device", {}, "ci"));

// X-TOKEN as @xmpp/client's SASL factory wants a mechanism; xtokenSent
// counts the app tokens sent.
let xtokenSent = 0;
function XToken() {}
XToken.prototype.name = "X-TOKEN";
XToken.prototype.clientFirst = true;
XToken.prototype.response = function response(cred) {
  xtokenSent++;
  return `\0${cred.username}\0${cred.password}`;
};

// connect logs in once: with the app token (token null) or with the FAST
// token only, and returns what it saw.
async function connect(fastToken) {
  const seen = { tokens: [], mechanism: null, bound: null };
  const xmpp = client({
    service: opts.service,
    domain: opts.domain,
    resource: "fastjs",
    credentials: async (authenticate, mechanisms, fast) => {
      if (!mechanisms.includes("X-TOKEN")) {
        throw new CheckFailed(`X-TOKEN not offered in SASL2 (${mechanisms.join(", ")})`);
      }
      if (!fast) throw new CheckFailed("the server offered no FAST mechanism @xmpp/client supports");
      // With a token, @xmpp/client tries FAST first; without, it asks
      // for a token and logs in with the mechanism given here.
      const creds = fastToken ? { username: opts.username, token: fastToken } : { username: opts.username, password: opts.token };
      await authenticate(creds, "X-TOKEN", userAgent());
    },
  });
  xmpp.saslFactory.use(XToken);
  xmpp.reconnect.stop();
  xmpp.fast.saveToken = async (t) => {
    seen.tokens.push(t);
  };
  xmpp.on("element", (el) => {
    console.error(`IN  ${el}`);
    if (el.is("success", "urn:xmpp:sasl:2")) {
      seen.bound = el.getChild("bound", "urn:xmpp:bind:0") !== undefined;
    }
  });
  xmpp.on("send", (el) => {
    console.error(`OUT ${el}`);
    if (el.is("authenticate", "urn:xmpp:sasl:2")) seen.mechanism = el.attrs.mechanism;
  });
  xmpp.on("status", (s) => console.error(`status: ${s}`));
  xmpp.on("error", (err) => console.error(`error: ${err}`));
  await xmpp.start();
  seen.jid = xmpp.jid.toString();
  // The session works: an iq to the server is answered.
  await xmpp.iqCaller.request(xml("iq", { type: "get", to: opts.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })), 10000);
  await xmpp.stop();
  return seen;
}

function checkToken(seen, what) {
  if (seen.tokens.length !== 1) {
    throw new CheckFailed(`${what}: ${seen.tokens.length} FAST tokens in <success/>, want 1`);
  }
  const t = seen.tokens[0];
  const days = (new Date(t.expiry) - Date.now()) / 86400000;
  if (t.mechanism !== "HT-SHA-256-NONE" || !t.token || days < 13.9 || days > 14.1) {
    throw new CheckFailed(`${what}: token ${JSON.stringify(t)} (want HT-SHA-256-NONE, expiring in 14 days)`);
  }
  return t;
}

async function run() {
  step = "step 1 (X-TOKEN, token requested)";
  let seen = await connect(null);
  if (seen.mechanism !== "X-TOKEN" || xtokenSent !== 1) {
    throw new CheckFailed(`logged in with ${seen.mechanism}, ${xtokenSent} app tokens sent`);
  }
  if (!seen.bound || !seen.jid.startsWith(`${opts.username}@${opts.domain}/fastjs/`)) {
    throw new CheckFailed(`not bound inline by Bind2 (bound=${seen.bound}, jid=${seen.jid})`);
  }
  const first = checkToken(seen, "after X-TOKEN");
  say(`online as ${seen.jid} (Bind2), FAST token until ${first.expiry}; disconnected`);

  step = "step 2 (FAST only)";
  seen = await connect(first);
  if (seen.mechanism !== "HT-SHA-256-NONE" || xtokenSent !== 1) {
    throw new CheckFailed(`logged in with ${seen.mechanism}, ${xtokenSent} app tokens sent in all (want FAST, and the app token only once)`);
  }
  const second = checkToken(seen, "after FAST");
  if (second.token === first.token) throw new CheckFailed("the token was not rotated");
  say(`online as ${seen.jid} with ${seen.mechanism}, no app token; rotated token until ${second.expiry}`);

  step = "step 3 (rotated token)";
  seen = await connect(second);
  if (seen.mechanism !== "HT-SHA-256-NONE" || xtokenSent !== 1) {
    throw new CheckFailed(`logged in with ${seen.mechanism}, ${xtokenSent} app tokens sent in all`);
  }
  checkToken(seen, "after the rotated token");
  say(`online as ${seen.jid} with the rotated token`);
  console.log("all steps OK");
}

try {
  await run();
  process.exit(0);
} catch (err) {
  console.error(`FAIL: ${step}: ${err instanceof CheckFailed ? err.message : err.stack}`);
  process.exit(1);
}
