package component_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/stream"

	"ottr.im/ottr/component"
	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/routertest"
	"ottr.im/ottr/router"
)

const (
	name   = "push.localhost"
	secret = "s3cret"
)

// serve starts a core with the component push.localhost and a listener
// for it, and returns the core and the listener's address.
func serve(t *testing.T) (*router.Router, string) {
	t.Helper()
	core, _ := routertest.New(t)
	srv, err := component.New(component.Config{
		Services: []component.Service{{Name: name, Secret: secret}},
		Core:     core,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.Serve(ctx, conn)
			}()
		}
	}()
	return core, ln.Addr().String()
}

func dial(t *testing.T, addr, name, secret string) (*component.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := component.Dial(ctx, addr, name, secret)
	if err == nil {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func TestHandshake(t *testing.T) {
	_, addr := serve(t)
	tests := []struct {
		name, domain, secret string
		want                 string // the stream error, "" for success
	}{
		{"good secret", name, secret, ""},
		{"bad secret", name, "wrong", "not-authorized"},
		{"unknown domain", "other.localhost", secret, "host-unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dial(t, addr, tc.domain, tc.secret)
			var se stream.Error
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("handshake: %v", err)
			case tc.want == "":
				c.Close()
			case !errors.As(err, &se) || se.Err != tc.want:
				t.Fatalf("got %v, want the stream error %s", err, tc.want)
			}
		})
	}
}

func TestConflict(t *testing.T) {
	_, addr := serve(t)
	if _, err := dial(t, addr, name, secret); err != nil {
		t.Fatal(err)
	}
	var se stream.Error
	if _, err := dial(t, addr, name, secret); !errors.As(err, &se) || se.Err != "conflict" {
		t.Fatalf("second connection: %v, want conflict", err)
	}
}

// TestRaw checks the handshake on the wire: the server's header, a
// handshake in upper-case hex, what comes before the handshake.
func TestRaw(t *testing.T) {
	_, addr := serve(t)
	tests := []struct {
		name string
		send func(id string) string // after the header
		want string                 // in what the server writes
	}{
		{"upper-case hex", func(id string) string {
			return "<handshake>" + strings.ToUpper(component.Handshake(id, secret)) + "</handshake>"
		}, "<handshake/>"},
		{"stanza first", func(string) string { return "<message to='a@localhost'/>" }, "not-authorized"},
		{"handshake with children", func(string) string { return "<handshake><x/></handshake>" }, "not-authorized"},
		{"too large", func(string) string { return "<handshake>" + strings.Repeat("a", 20<<10) + "</handshake>" }, "policy-violation"},
		{"not well-formed", func(string) string { return "<handshake></hand>" }, "not-well-formed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='"+name+"'>")
			br := bufio.NewReader(conn)
			head, err := br.ReadString('>')
			for err == nil && !strings.Contains(head, "<stream:stream") {
				var more string
				more, err = br.ReadString('>')
				head += more
			}
			if err != nil || !strings.Contains(head, "from='"+name+"'") || !strings.Contains(head, "xmlns='jabber:component:accept'") {
				t.Fatalf("header %q, %v", head, err)
			}
			id := head[strings.Index(head, "id='")+4:]
			id = id[:strings.IndexByte(id, '\'')]
			io.WriteString(conn, tc.send(id))
			got := make([]byte, 512)
			n, _ := io.ReadAtLeast(br, got, len(tc.want))
			if !strings.Contains(string(got[:n]), tc.want) {
				t.Fatalf("server wrote %q, want %s", got[:n], tc.want)
			}
		})
	}
}

func TestStanzas(t *testing.T) {
	core, addr := serve(t)
	c, err := dial(t, addr, name, secret)
	if err != nil {
		t.Fatal(err)
	}
	alice := routertest.Bind(t, core, "alice@localhost/phone")
	core.SetPresence(alice, &element.Stanza{Name: "presence"}, 0)

	// A client's stanza to the component, and the component's answer.
	routertest.Send(t, core, alice, `<iq type='get' id='q1' to='`+name+`'><query xmlns='jabber:iq:version'/></iq>`)
	st, err := c.Next()
	if err != nil || st.Name != "iq" || st.ID != "q1" || st.From.String() != "alice@localhost/phone" {
		t.Fatalf("the component got %+v, %v", st, err)
	}
	c.Send(`<iq type='result' id='q1' from='` + name + `' to='alice@localhost/phone'><query xmlns='jabber:iq:version'><name>bot</name></query></iq>`)
	// A message from a JID of the component's domain, with the stream's
	// namespace written out.
	c.Send(`<message xmlns='jabber:component:accept' from='bot@` + name + `/x' to='alice@localhost' type='chat'><body>hi</body></message>`)
	want := []string{"result", "chat"}
	var got []*element.Stanza
	for deadline := time.Now().Add(5 * time.Second); len(got) < len(want) && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		got = append(got, alice.Take()...)
	}
	if len(got) != len(want) {
		t.Fatalf("alice got %d stanzas, want %d", len(got), len(want))
	}
	for i, st := range got {
		if st.Type != want[i] {
			t.Errorf("stanza %d: type %s, want %s", i, st.Type, want[i])
		}
	}
	if got[1].ChildText(element.NSClient, "body") != "hi" {
		t.Errorf("body %q", got[1].ChildText(element.NSClient, "body"))
	}
	if got[1].From.String() != "bot@"+name+"/x" {
		t.Errorf("from %s", got[1].From)
	}

	// A stanza to an address nobody serves comes back as an error to its
	// sender in the component's domain.
	c.Send(`<message from='bot@` + name + `/x' to='someone@example.net' type='chat' id='m2'><body>?</body></message>`)
	st, err = c.Next()
	if err != nil || st.Type != "error" || st.ID != "m2" || st.To.String() != "bot@"+name+"/x" {
		t.Fatalf("bounce %+v, %v", st, err)
	}

	// From outside its domain: invalid-from, the stream ends.
	c.Send(`<message from='alice@localhost' to='alice@localhost' type='chat'><body>spoof</body></message>`)
	var se stream.Error
	if _, err := c.Next(); !errors.As(err, &se) || se.Err != "invalid-from" {
		t.Fatalf("got %v, want invalid-from", err)
	}
	if got := alice.Take(); len(got) != 0 {
		t.Fatalf("the spoofed message reached alice")
	}
}

func TestNotConnected(t *testing.T) {
	core, _ := serve(t)
	alice := routertest.Bind(t, core, "alice@localhost/phone")
	routertest.Send(t, core, alice, `<message to='`+name+`' id='m' type='chat'><body>?</body></message>`)
	got := alice.Take()
	if len(got) != 1 || got[0].Type != "error" || !strings.Contains(routertest.XML(t, got[0]), "remote-server-timeout") {
		t.Fatalf("alice got %d stanzas, want a remote-server-timeout error", len(got))
	}
}
