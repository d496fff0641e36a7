package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/mod/proxy65"
)

// withProxy65 turns the SOCKS5 proxy on, on a loopback port of its own.
func withProxy65(cfg *config.Config) { cfg.Proxy65.Listen = "127.0.0.1:0" }

// socksDial connects to the proxy at addr for the stream sid from
// initiator to target.
func socksDial(t *testing.T, addr, sid string, initiator, target jid.JID) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), xmpptest.Timeout)
	defer cancel()
	c, err := proxy65.Dial(ctx, addr, proxy65.Hash(sid, initiator, target))
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func activateIQ(id, sid string, target jid.JID) string {
	return `<iq type='set' id='` + id + `' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/bytestreams' sid='` + sid + `'><activate>` + target.String() + `</activate></query></iq>`
}

// TestProxy65Transfer sends a file from alice to bob through the proxy,
// as XEP-0065 §6 goes: discovery, streamhost, offer, the target's and
// the initiator's SOCKS5 connections, activation, the bytes.
func TestProxy65Transfer(t *testing.T) {
	ts := startServer(t, withProxy65)
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")

	items := alice.IQ(`<iq type='get' id='items' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`, "items")
	if !strings.Contains(items.Inner, `jid="proxy.localhost"`) {
		t.Fatalf("disco#items of the host: %s", items.Inner)
	}
	info := alice.IQ(`<iq type='get' id='info' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "info")
	if !strings.Contains(info.Inner, `category="proxy"`) || !strings.Contains(info.Inner, `type="bytestreams"`) {
		t.Fatalf("disco#info of the proxy: %s", info.Inner)
	}
	sh := alice.IQ(`<iq type='get' id='sh' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/bytestreams'/></iq>`, "sh")
	_, port, _ := net.SplitHostPort(ts.srv.Proxy65Addr().String())
	if want := `jid="proxy.localhost" host="127.0.0.1" port="` + port + `"`; sh.Type != "result" || !strings.Contains(sh.Inner, want) {
		t.Fatalf("streamhost answer %s, want %s", sh.Inner, want)
	}
	addr := net.JoinHostPort("127.0.0.1", port)

	// The offer reaches bob, who connects first.
	const sid = "s5b-transfer"
	alice.Send(`<iq type='set' id='offer' to='` + bob.JID.String() + `'><query xmlns='http://jabber.org/protocol/bytestreams' sid='` + sid + `'><streamhost jid='proxy.localhost' host='127.0.0.1' port='` + port + `'/></query></iq>`)
	bob.WaitFor(func(r xmpptest.Received) bool { return r.Name == "iq" && r.ID == "offer" })
	bc, err := socksDial(t, addr, sid, alice.JID, bob.JID)
	if err != nil {
		t.Fatalf("bob's SOCKS5 connection: %v", err)
	}
	alice.WaitFor(func(r xmpptest.Received) bool { return r.Name == "iq" && r.ID == "offer" && r.Type == "result" })
	ac, err := socksDial(t, addr, sid, alice.JID, bob.JID)
	if err != nil {
		t.Fatalf("alice's SOCKS5 connection: %v", err)
	}
	// Only the initiator activates: bob (whose JID makes another hash)
	// and carol are refused.
	carol := ts.online(t, "carol", "c")
	if r := bob.IQ(activateIQ("bob-act", sid, bob.JID), "bob-act"); r.Type != "error" || !strings.Contains(r.Inner, "item-not-found") {
		t.Fatalf("activation by the target: %+v", r)
	}
	if r := carol.IQ(activateIQ("carol-act", sid, bob.JID), "carol-act"); r.Type != "error" || !strings.Contains(r.Inner, "item-not-found") {
		t.Fatalf("activation by a third user: %+v", r)
	}
	if r := alice.IQ(activateIQ("act", sid, bob.JID), "act"); r.Type != "result" {
		t.Fatalf("activation: %+v", r)
	}
	file := make([]byte, 4<<20)
	rand.Read(file)
	go func() {
		ac.Write(file)
		ac.(*net.TCPConn).CloseWrite()
	}()
	bc.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(bc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, file) {
		t.Fatalf("bob received %d bytes, not the %d alice sent", len(got), len(file))
	}
}

// TestProxy65Refusals: a non-local entity (a component) may not use the
// proxy, a hash with two connections takes no third, and activating with
// one party connected fails.
func TestProxy65Refusals(t *testing.T) {
	ts := startServer(t, func(cfg *config.Config) { withProxy65(cfg); withComponent(cfg) })
	comp, err := dialComponent(t, ts, compName, compSecret)
	if err != nil {
		t.Fatal(err)
	}
	alice := ts.online(t, "alice", "a")
	bob := jid.MustParse("bob@localhost/b")
	addr := ts.srv.Proxy65Addr().String()

	for _, iq := range []string{
		`<iq type='get' id='c1' from='push.localhost' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/bytestreams'/></iq>`,
		`<iq type='set' id='c2' from='push.localhost' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/bytestreams' sid='x'><activate>bob@localhost/b</activate></query></iq>`,
	} {
		if err := comp.Send(iq); err != nil {
			t.Fatal(err)
		}
		st, err := comp.Next()
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := st.Marshal(); st.Type != "error" || !strings.Contains(string(b), "forbidden") {
			t.Fatalf("the component got %s, want forbidden", b)
		}
	}

	if _, err := socksDial(t, addr, "one", alice.JID, bob); err != nil {
		t.Fatal(err)
	}
	if r := alice.IQ(activateIQ("one", "one", bob), "one"); r.Type != "error" || !strings.Contains(r.Inner, "not-allowed") {
		t.Fatalf("activation with only one party: %+v", r)
	}
	if _, err := socksDial(t, addr, "one", alice.JID, bob); err != nil {
		t.Fatal(err)
	}
	var re proxy65.ReplyError
	if _, err := socksDial(t, addr, "one", alice.JID, bob); !errors.As(err, &re) || re != 2 {
		t.Fatalf("a third connection for one hash: %v, want SOCKS5 reply 2", err)
	}
}

// TestProxy65Off: without [proxy65] listen there is no proxy domain.
func TestProxy65Off(t *testing.T) {
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	if items := alice.IQ(`<iq type='get' id='items' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`, "items"); strings.Contains(items.Inner, "proxy.") {
		t.Fatalf("disco#items lists a proxy: %s", items.Inner)
	}
	if r := alice.IQ(`<iq type='get' id='sh' to='proxy.localhost'><query xmlns='http://jabber.org/protocol/bytestreams'/></iq>`, "sh"); r.Type != "error" {
		t.Fatalf("streamhost query with the proxy off: %+v", r)
	}
	if ts.srv.Proxy65Addr() != nil {
		t.Fatal("a proxy listener with the proxy off")
	}
}
