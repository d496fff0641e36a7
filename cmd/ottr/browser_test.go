package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/internal/testtool"
	"ottr.im/ottr/internal/xmpptest"
)

// chromiumBin is Debian's chromium, which playwright-core drives; no
// browser is downloaded.
const chromiumBin = "/usr/bin/chromium"

// browserDir holds the test page, run.mjs and their pinned npm packages.
var browserDir = filepath.Join("..", "..", "testdata", "browser")

// requireBrowser skips the test when chromium, node or the npm packages
// are missing, except in CI, where .ci/run installs them and their absence
// is a failure.
func requireBrowser(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	var missing []string
	if err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(chromiumBin); err != nil {
		missing = append(missing, chromiumBin+" (apt-get install chromium)")
	}
	for _, pkg := range []string{"playwright-core", "strophe.js"} {
		if _, err := os.Stat(filepath.Join(browserDir, "node_modules", pkg, "package.json")); err != nil {
			missing = append(missing, "testdata/browser/node_modules/"+pkg+" (npm ci in testdata/browser)")
		}
	}
	if len(missing) > 0 {
		testtool.Missing(t, strings.Join(missing, ", "))
	}
	return node
}

// pageServer serves the test page and Strophe.js's own browser build, on
// an origin of its own (not ottr's).
func pageServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(browserDir, "index.html"))
	})
	mux.HandleFunc("GET /strophe.umd.min.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(browserDir, "node_modules", "strophe.js", "dist", "strophe.umd.min.js"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// writeBrowserConfig serves localhost with c2s on c2sAddr and the web
// transports on httpAddr, for pages from origin.
func writeBrowserConfig(t *testing.T, c2sAddr, httpAddr, origin string) string {
	t.Helper()
	return writeConfigFile(t, func(dataDir string) string {
		return serveTOML(dataDir, c2sAddr, "localhost") + fmt.Sprintf(`[http]
listen = [%q]
origins = [%q]
`, httpAddr, origin)
	})
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, p *serveProc, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ottr serve does not listen on %s: %v\nstderr:\n%s", addr, err, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mintWithCLI returns a token for user from "ottr token", as a backend
// running the binary would get it.
func mintWithCLI(t *testing.T, cfg, user string) string {
	t.Helper()
	r := runOttr(t, "", "", "token", "-c", cfg, user)
	r.check(t, 0, nil, nil)
	return strings.TrimSpace(r.stdout)
}

// chatMessage is a received chat message, as the Go client saw it.
type chatMessage struct {
	From string `xml:"from,attr"`
	Type string `xml:"type,attr"`
	Body string `xml:"body"`
}

// ponger is a Go client logged in over TCP that answers every chat message
// with "pong: " and its body, and reports what it got.
type ponger struct {
	jid      jid.JID
	got      chan chatMessage
	online   chan struct{} // closed when its own presence came back
	serveErr chan error
}

func startPonger(t *testing.T, addr string, p *serveProc, dataDir, user, token string) *ponger {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := xmpp.NewClientSession(ctx, jid.MustParse(user+"@localhost"), conn,
		xmpp.StartTLS(dataDirTLS(t, dataDir)),
		xmpp.SASL("", token, auth.XToken),
		xmpptest.BindResource("go"),
	)
	if err != nil {
		conn.Close()
		t.Fatalf("login %s over TCP: %v\nserver stderr:\n%s", user, err, p.stderr.String())
	}
	pg := &ponger{
		jid:      sess.LocalAddr(),
		got:      make(chan chatMessage, 16),
		online:   make(chan struct{}),
		serveErr: make(chan error, 1),
	}
	t.Cleanup(func() {
		sess.Close()
		conn.Close()
	})
	onlineOnce := false
	handler := xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		var el struct {
			chatMessage
			ID string `xml:"id,attr"`
		}
		d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r))
		if err := d.Decode(&el); err != nil {
			return err
		}
		switch start.Name.Local {
		case "presence":
			if el.From == pg.jid.String() && el.Type == "" && !onlineOnce {
				onlineOnce = true
				close(pg.online)
			}
		case "iq":
			if el.Type == "get" || el.Type == "set" {
				to, _ := jid.Parse(el.From)
				_, err := xmlstream.Copy(r, stanza.IQ{ID: el.ID, To: to, Type: stanza.ErrorIQ}.Wrap(
					stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}.TokenReader()))
				return err
			}
		case "message":
			if el.Type != "chat" || el.Body == "" {
				return nil
			}
			pg.got <- el.chatMessage
			to, err := jid.Parse(el.From)
			if err != nil {
				return err
			}
			reply := stanza.Message{To: to, Type: stanza.ChatMessage}.Wrap(xmlstream.Wrap(
				xmlstream.Token(xml.CharData("pong: "+el.Body)),
				xml.StartElement{Name: xml.Name{Local: "body"}},
			))
			_, err = xmlstream.Copy(r, reply)
			return err
		}
		return nil
	})
	go func() { pg.serveErr <- sess.Serve(handler) }()
	if err := sess.Send(context.Background(), stanza.Presence{}.Wrap(nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pg.online:
	case err := <-pg.serveErr:
		t.Fatalf("%s: stream ended before its presence came back: %v", pg.jid, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: its presence did not come back\nserver stderr:\n%s", pg.jid, p.stderr.String())
	}
	return pg
}

// TestBrowserXToken has a browser log in with X-TOKEN and chat with a Go
// client, with parts nobody here wrote: Debian's chromium, headless,
// driven by playwright-core, on a page that uses Strophe.js (both from
// npm, versions pinned in testdata/browser/package-lock.json). The page,
// from an origin of its own, logs in as alice with a token printed by
// "ottr token", sends bob (a Go client over TCP) a message and shows bob's
// reply, after joining a new group chat room (XEP-0045), configuring it
// as an instant room and seeing its own message echoed by the room; once
// over WebSocket and once over BOSH. A screenshot of each run
// is written to testdata/output/browser-{ws,bosh}.png.
func TestBrowserXToken(t *testing.T) {
	node := requireBrowser(t)
	page := pageServer(t)
	c2sAddr, httpAddr := freeAddr(t), freeAddr(t)
	for httpAddr == c2sAddr {
		httpAddr = freeAddr(t)
	}
	cfg := writeBrowserConfig(t, c2sAddr, httpAddr, page.URL)
	p := startServe(t, cfg, c2sAddr)
	waitListening(t, p, httpAddr)
	bob := startPonger(t, c2sAddr, p, filepath.Join(filepath.Dir(cfg), "data"), "bob", mintWithCLI(t, cfg, "bob@localhost"))

	outDir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "output"))
	if err != nil {
		t.Fatal(err)
	}
	for _, transport := range []string{"ws", "bosh"} {
		t.Run(transport, func(t *testing.T) {
			resource := "browser-" + transport
			body := "hello from chromium over " + transport
			room := "lounge-" + transport + "@conference.localhost"
			shot := filepath.Join(outDir, "browser-"+transport+".png")
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, filepath.Join(browserDir, "run.mjs"),
				"--url", page.URL+"/",
				"--transport", transport,
				"--endpoint", httpAddr,
				"--jid", "alice@localhost/"+resource,
				"--to", "bob@localhost",
				"--token", mintWithCLI(t, cfg, "alice@localhost"),
				"--body", body,
				"--room", room,
				"--screenshot", shot,
				"--timeout", "30",
				"--chromium", chromiumBin,
			)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("run.mjs %s: %v\nstdout:\n%s\nstderr:\n%s\nserver stderr:\n%s",
					transport, err, stdout.String(), stderr.String(), p.stderr.String())
			}
			t.Logf("run.mjs:\n%s", strings.TrimRight(stdout.String(), "\n"))
			for _, want := range []string{
				"joined room " + room + " as " + resource + " (status 110, 201)",
				"room echo: hello room from " + resource,
				"got reply: pong: " + body,
			} {
				if !strings.Contains(stdout.String(), want) {
					t.Fatalf("the page does not show %q:\n%s", want, stdout.String())
				}
			}
			select {
			case m := <-bob.got:
				if m.From != "alice@localhost/"+resource || m.Body != body {
					t.Fatalf("bob got %+v, want %q from alice@localhost/%s", m, body, resource)
				}
			default:
				t.Fatal("the page got a reply but bob got no message")
			}
		})
	}
	if code := p.stop(t, os.Interrupt); code != 0 {
		t.Errorf("exit code %d\nserver stderr:\n%s", code, p.stderr.String())
	}
}
