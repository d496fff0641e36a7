package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"ottr.im/ottr/internal/testtool"
)

// The interop tests of the mobile-client features (issue 11): stream
// management (XEP-0198), carbons (XEP-0280) and the message archive
// (XEP-0313), driven by slixmpp over TCP and by @xmpp/client over
// WebSocket; scripts in testdata/interop/slixmpp_mobile.py and
// testdata/xmppjs/sm.mjs.

// cutProxy forwards TCP connections to a target and, when the client under
// test asks it to over HTTP, black-holes what the server sends (the bytes
// are read and dropped, as on a network that went away mid-burst) or cuts
// every connection at once with a reset and no stream close. A connection
// accepted after a cut is forwarded normally again.
type cutProxy struct {
	target  string
	ln      net.Listener
	control *httptest.Server

	mu        sync.Mutex
	conns     map[net.Conn]struct{} // both ends of every forwarded connection
	blackhole bool
	discarded int64 // bytes from the server dropped while black-holing
	cuts      int   // connections cut
}

// proxyStats is what GET /stats of a cutProxy's control server answers.
type proxyStats struct {
	Discarded int64 `json:"discarded"`
	Cuts      int   `json:"cuts"`
	Conns     int   `json:"conns"`
}

// startCutProxy listens on a free loopback port and forwards to target
// until the test ends. Its control server answers POST /blackhole, POST
// /cut and GET /stats.
func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &cutProxy{target: target, ln: ln, conns: make(map[net.Conn]struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /blackhole", func(w http.ResponseWriter, r *http.Request) {
		px.mu.Lock()
		px.blackhole = true
		px.mu.Unlock()
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /cut", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, px.cut())
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(px.stats())
	})
	px.control = httptest.NewServer(mux)
	go px.serve()
	t.Cleanup(func() {
		px.control.Close()
		ln.Close()
		px.cut()
	})
	return px
}

// port is the proxy's listening port.
func (px *cutProxy) port() string {
	_, port, _ := net.SplitHostPort(px.ln.Addr().String())
	return port
}

func (px *cutProxy) serve() {
	for {
		client, err := px.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", px.target)
		if err != nil {
			client.Close()
			continue
		}
		px.mu.Lock()
		px.conns[client] = struct{}{}
		px.conns[server] = struct{}{}
		px.mu.Unlock()
		go func() {
			io.Copy(server, client)
			px.forget(client, server)
		}()
		go func() {
			px.toClient(client, server)
			px.forget(client, server)
		}()
	}
}

// forget closes a forwarded connection that ended by itself and drops it
// from the set a cut resets.
func (px *cutProxy) forget(client, server net.Conn) {
	px.mu.Lock()
	delete(px.conns, client)
	delete(px.conns, server)
	px.mu.Unlock()
	client.Close()
	server.Close()
}

// toClient copies what the server sends to the client, or drops it while
// the proxy black-holes.
func (px *cutProxy) toClient(client, server net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			px.mu.Lock()
			drop := px.blackhole
			if drop {
				px.discarded += int64(n)
			}
			px.mu.Unlock()
			if !drop {
				if _, werr := client.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// cut resets every forwarded connection (SO_LINGER 0: an RST, no FIN) and
// ends black-holing, and returns how many connections it cut.
func (px *cutProxy) cut() int {
	px.mu.Lock()
	defer px.mu.Unlock()
	n := 0
	for c := range px.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
		n++
	}
	clear(px.conns)
	px.blackhole = false
	px.cuts += n / 2
	return n / 2
}

func (px *cutProxy) stats() proxyStats {
	px.mu.Lock()
	defer px.mu.Unlock()
	return proxyStats{Discarded: px.discarded, Cuts: px.cuts, Conns: len(px.conns) / 2}
}

// runSlixmppMobile runs testdata/interop/slixmpp_mobile.py's scenario
// against ottr with the accounts alice and bob (runSlixmppScript), with
// the arguments extra returns for ottr's c2s address.
func runSlixmppMobile(t *testing.T, scenario string, extra func(c2sAddr string) []string) {
	t.Helper()
	runSlixmppScript(t, "slixmpp_mobile.py", []string{"alice", "bob"}, func(c2sAddr string) []string {
		return append([]string{scenario}, extra(c2sAddr)...)
	})
}

// TestInteropSlixmppSMResume has slixmpp (plugin xep_0198) enable stream
// management with resumption, through a proxy that then black-holes what
// the server sends while bob sends a burst, and cuts the connection (a
// reset, no stream close); bob sends more while alice is away; alice
// reconnects, resumes (the session_resumed event, no new bind) and has
// every message exactly once and in order, including the ones that were
// in flight; the acks of what she sent flow both before and after.
func TestInteropSlixmppSMResume(t *testing.T) {
	var px *cutProxy
	runSlixmppMobile(t, "sm", func(c2sAddr string) []string {
		px = startCutProxy(t, c2sAddr)
		return []string{"--proxy-port", px.port(), "--control", px.control.URL}
	})
	st := px.stats()
	if st.Cuts != 1 || st.Discarded == 0 {
		t.Errorf("proxy: %d connections cut, %d bytes black-holed; want 1 cut and some bytes in flight", st.Cuts, st.Discarded)
	}
}

// TestInteropSlixmppCarbons has two slixmpp resources of alice (plugin
// xep_0280) enable carbons: a message from bob to one is a received carbon
// on the other, one's message to bob a sent carbon on the other, private
// messages (<private/> and <no-copy/>) are not copied either way, a message
// to the bare JID reaches each resource exactly once, and after disable no
// carbon comes.
func TestInteropSlixmppCarbons(t *testing.T) {
	runSlixmppMobile(t, "carbons", func(string) []string { return nil })
}

// TestInteropSlixmppMAM has alice and bob exchange messages with slixmpp,
// then alice pages through her archive (plugin xep_0313, RSM pages of 10)
// forward and backward: every message once, in order, pages within the
// limit, <fin complete='true'/> at the end; the <stanza-id/> (XEP-0359)
// of each message she received live is its archive id.
func TestInteropSlixmppMAM(t *testing.T) {
	runSlixmppMobile(t, "mam", func(string) []string { return []string{"--messages", "25", "--page", "10"} })
}

// xmppjsDir holds the @xmpp/client test script and its pinned npm packages.
var xmppjsDir = filepath.Join("..", "..", "testdata", "xmppjs")

// requireXmppjs returns node and the arguments it needs for a global
// WebSocket (Node 20 has it behind --experimental-websocket). The test is
// skipped when node or the npm packages are missing, except in CI, where
// .ci/run installs them and their absence is a failure.
func requireXmppjs(t *testing.T) (string, []string) {
	t.Helper()
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node (Node.js 20 or later)")
	}
	if _, err := os.Stat(filepath.Join(xmppjsDir, "node_modules", "@xmpp", "client", "package.json")); err != nil {
		missing = append(missing, "testdata/xmppjs/node_modules/@xmpp/client (npm ci in testdata/xmppjs)")
	}
	if len(missing) > 0 {
		testtool.Missing(t, strings.Join(missing, ", "))
	}
	if exec.Command(node, "-e", `process.exit(typeof WebSocket === "function" ? 0 : 1)`).Run() == nil {
		return node, nil
	}
	return node, []string{"--experimental-websocket"}
}

// TestInteropXmppjsWebSocketSM logs in with @xmpp/client 0.14 in Node over
// ottr's WebSocket endpoint (through a cutProxy), with its
// stream-management plugin: enabled with resumption, a chat with bob (a Go
// client that answers "pong: " and the body), the server's acks of what it
// sent; then, while the proxy black-holes what the server sends, a message
// whose answer is in flight, a cut, the client's own reconnect and
// resumption, the answer delivered exactly once, and bob got each message
// exactly once.
func TestInteropXmppjsWebSocketSM(t *testing.T) {
	node, nodeArgs := requireXmppjs(t)
	p, cfg, c2sAddr, httpAddr := startServeHTTP(t, "alice")
	bob := startPonger(t, c2sAddr, p, filepath.Join(filepath.Dir(cfg), "data"), "bob", mintWithCLI(t, cfg, "bob@localhost"))
	px := startCutProxy(t, httpAddr)

	runXmppjs(t, p, node, nodeArgs, "sm.mjs",
		"--service", "ws://127.0.0.1:"+px.port()+"/xmpp-websocket",
		"--domain", "localhost",
		"--username", "alice", "--password", password("alice"),
		"--to", bob.jid.Bare().String(),
		"--control", px.control.URL,
		"--timeout", "60")

	// bob got each of the script's messages exactly once, in order.
	// The script saw the answer to its last message, so bob had got it,
	// and a doubled earlier one before it.
	var got []string
	for drained := false; !drained; {
		select {
		case m := <-bob.got:
			if !strings.HasPrefix(m.From, "alice@localhost/") {
				t.Fatalf("bob got %+v, not from alice", m)
			}
			got = append(got, m.Body)
		default:
			drained = true
		}
	}
	want := []string{"xmppjs 1", "xmppjs 2 (answer in flight)", "xmppjs 3 (after resume)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("bob got %q, want %q exactly once each", got, want)
	}
	if st := px.stats(); st.Cuts != 1 {
		t.Errorf("proxy: %d connections cut, want 1", st.Cuts)
	}
	stopServe(t, p)
}
