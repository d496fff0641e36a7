package web

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// splitAll feeds out to a splitter in chunks of n bytes and returns the
// events, one string each.
func splitAll(t testing.TB, out string, n int) []string {
	s := newSplitter()
	var got []string
	emit := func(ev event, data []byte, h streamHeader) error {
		switch ev {
		case evHeader:
			got = append(got, fmt.Sprintf("header id=%s from=%s to=%s version=%s lang=%s", h.id, h.from, h.to, h.version, h.lang))
		case evElement:
			got = append(got, string(data))
		case evSpace:
			got = append(got, "space")
		case evEnd:
			got = append(got, "end")
		}
		return nil
	}
	for i := 0; i < len(out); i += n {
		if err := s.feed([]byte(out[i:min(i+n, len(out))]), emit); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// A stream as c2s writes it: declaration, header, features with the
// stream prefix, SASL, a restart, a bind result without a namespace of
// its own, stanzas, a keepalive, a stream error and the end.
const serverStream = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='abc' from='localhost' xml:lang='en'>` +
	`<stream:features><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>X-TOKEN</mechanism></mechanisms></stream:features>` +
	`<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"></success>` +
	`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='def' from='localhost' to='a@localhost'>` +
	`<stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"></bind></stream:features>` +
	`<iq type="result" id="b1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><jid>a@localhost/r</jid></bind></iq>` +
	`<message xmlns="jabber:client" from="b@localhost/x" to="a@localhost/r"><body>a &lt;b&gt; 'c' "d" /&gt;</body><x xmlns="urn:x" a='1>2'/></message>` +
	` ` +
	`<presence xmlns="jabber:client" from="b@localhost/x"/>` +
	`<error xmlns="http://etherx.jabber.org/streams"><system-shutdown xmlns="urn:ietf:params:xml:ns:xmpp-streams"></system-shutdown></error>` +
	`</stream:stream>`

var wantEvents = []string{
	"header id=abc from=localhost to= version=1.0 lang=en",
	`<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>X-TOKEN</mechanism></mechanisms></stream:features>`,
	`<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"></success>`,
	"header id=def from=localhost to=a@localhost version=1.0 lang=",
	`<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"></bind></stream:features>`,
	`<iq xmlns='jabber:client' type="result" id="b1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><jid>a@localhost/r</jid></bind></iq>`,
	`<message xmlns="jabber:client" from="b@localhost/x" to="a@localhost/r"><body>a &lt;b&gt; 'c' "d" /&gt;</body><x xmlns="urn:x" a='1>2'/></message>`,
	"space",
	`<presence xmlns="jabber:client" from="b@localhost/x"/>`,
	`<error xmlns="http://etherx.jabber.org/streams"><system-shutdown xmlns="urn:ietf:params:xml:ns:xmpp-streams"></system-shutdown></error>`,
	"end",
}

func TestSplitter(t *testing.T) {
	// Whatever the chunks the encoder flushes, the same events.
	for _, n := range []int{1, 2, 3, 7, 64, 4096} {
		got := splitAll(t, serverStream, n)
		if strings.Join(got, "\n") != strings.Join(wantEvents, "\n") {
			t.Errorf("chunks of %d:\n%s\nwant\n%s", n, strings.Join(got, "\n"), strings.Join(wantEvents, "\n"))
		}
	}
	// Each element parses on its own, in the namespace it had in the
	// stream.
	for _, el := range wantEvents[1:] {
		if !strings.HasPrefix(el, "<") {
			continue
		}
		var v struct{ XMLName xml.Name }
		if err := xml.Unmarshal([]byte(el), &v); err != nil {
			t.Errorf("%s: %v", el, err)
		}
		if v.XMLName.Space == "" {
			t.Errorf("%s has no namespace on its own", el)
		}
	}
}

func TestSplitterBuffersLittle(t *testing.T) {
	s := newSplitter()
	emit := func(event, []byte, streamHeader) error { return nil }
	for range 1000 {
		s.feed([]byte(`<message xmlns="jabber:client"><body>hi</body></message> `), emit)
	}
	if len(s.buf) != 0 {
		t.Fatalf("%d bytes kept after whole elements", len(s.buf))
	}
	s.feed([]byte(`<message><body>half`), emit)
	if string(s.buf) != `<message><body>half` {
		t.Fatalf("kept %q", s.buf)
	}
}

func TestTranslateIn(t *testing.T) {
	tests := []struct{ in, want string }{
		{`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0" xml:lang="en"/>`,
			`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' xml:lang='en'>`},
		{"<?xml version='1.0'?>\n<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='a&apos;b' from='x@y' foo='bar' version='1.0'/>",
			`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a&#39;b' from='x@y' version='1.0'>`},
		{`<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />`, `</stream:stream>`},
		// Not the framing namespace, or not framing at all: as it is.
		{`<open to="localhost" version="1.0"/>`, `<open to="localhost" version="1.0"/>`},
		{`<message xmlns='jabber:client'><body>hi</body></message>`, `<message xmlns='jabber:client'><body>hi</body></message>`},
		{`<openx/>`, `<openx/>`},
		{`<!-- <open/> -->`, `<!-- <open/> -->`},
	}
	for _, tt := range tests {
		if got := string(translateIn([]byte(tt.in))); got != tt.want {
			t.Errorf("translateIn(%q) =\n%q\nwant\n%q", tt.in, got, tt.want)
		}
	}
}

func TestOpenMessage(t *testing.T) {
	got := string(openMessage(streamHeader{id: "abc", from: "localhost", version: "1.0"}))
	want := `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" from="localhost" id="abc" version="1.0" xml:lang="en"/>`
	if got != want {
		t.Errorf("openMessage = %s, want %s", got, want)
	}
}

func TestParseBody(t *testing.T) {
	b, err := parseBody([]byte(`<?xml version='1.0'?><body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='42' sid='s1' to='localhost' xml:lang='de' wait='60' hold='1' ver='1.6' xmpp:version='1.0' xmpp:restart='true' type='terminate'>` +
		`<message xmlns='jabber:client' to='b@localhost'><body>x</body></message><presence xmlns='jabber:client'/></body>` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := boshBody{rid: 42, hasRID: true, sid: "s1", to: "localhost", lang: "de", wait: 60, hold: 1, hasHold: true,
		ver: "1.6", xmppVersion: "1.0", restart: true, typ: "terminate",
		payload: []byte(`<message xmlns='jabber:client' to='b@localhost'><body>x</body></message><presence xmlns='jabber:client'/>`)}
	if fmt.Sprintf("%+v", *b) != fmt.Sprintf("%+v", want) {
		t.Errorf("parseBody =\n%+v\nwant\n%+v", *b, want)
	}
	empty, err := parseBody([]byte(`<body rid='1' xmlns='http://jabber.org/protocol/httpbind'/>`))
	if err != nil || len(empty.payload) != 0 || empty.rid != 1 {
		t.Errorf("empty body: %+v, %v", empty, err)
	}
	for _, bad := range []string{
		``, `<html/>`, `<body/>`, `<body xmlns='http://jabber.org/protocol/httpbind'>`,
		`<body xmlns='http://jabber.org/protocol/httpbind' rid='x'/>`,
		`<body xmlns='http://jabber.org/protocol/httpbind'><a></b></body>`,
		`<body xmlns='http://jabber.org/protocol/httpbind'/><body xmlns='http://jabber.org/protocol/httpbind'/>`,
		`<body xmlns='http://jabber.org/protocol/httpbind'/>trailing`,
		`<!-- c --><body xmlns='http://jabber.org/protocol/httpbind'/>`,
		`<!DOCTYPE body><body xmlns='http://jabber.org/protocol/httpbind'/>`,
		`<body xmlns='http://jabber.org/protocol/httpbind'>&undefined;</body>`,
	} {
		if b, err := parseBody([]byte(bad)); err == nil {
			t.Errorf("parseBody(%q) = %+v, want an error", bad, b)
		}
	}
}

func TestStreamErrorCondition(t *testing.T) {
	for el, want := range map[string]string{
		`<error xmlns="http://etherx.jabber.org/streams"><system-shutdown xmlns="urn:ietf:params:xml:ns:xmpp-streams"></system-shutdown></error>`:                                                        "system-shutdown",
		`<stream:error xmlns:stream='http://etherx.jabber.org/streams'><text xmlns="urn:ietf:params:xml:ns:xmpp-streams">x</text><conflict xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error>`: "conflict",
	} {
		got, ok := streamErrorCondition([]byte(el))
		if !ok || got != want {
			t.Errorf("streamErrorCondition(%s) = %q, %t", el, got, ok)
		}
	}
	if _, ok := streamErrorCondition([]byte(`<message xmlns="jabber:client"/>`)); ok {
		t.Error("a message is a stream error")
	}
	if boshCondition("conflict") != "remote-stream-error" || boshCondition("system-shutdown") != "system-shutdown" {
		t.Error("boshCondition")
	}
}

func TestBOSHVer(t *testing.T) {
	for in, want := range map[string]string{"1.6": "1.6", "1.11": "1.11", "1.12": "1.11", "2.0": "1.11", "": "1.11", "x": "1.11"} {
		if got := boshVer(in); got != want {
			t.Errorf("boshVer(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOrigins(t *testing.T) {
	h, err := New(Options{Origins: []string{"https://app.example", "http://localhost:8080"}})
	if err != nil {
		t.Fatal(err)
	}
	none, _ := New(Options{})
	tests := []struct {
		h      *Handler
		origin string
		host   string
		want   bool
	}{
		{h, "", "chat.example", true},
		{h, "https://app.example", "chat.example", true},
		{h, "https://APP.example:443", "chat.example", true},
		{h, "http://app.example", "chat.example", false},
		{h, "http://localhost:8080", "chat.example", true},
		{h, "https://evil.example", "chat.example", false},
		{h, "null", "chat.example", false},
		{h, "https://chat.example", "chat.example", true},
		{none, "https://chat.example", "chat.example", true},
		{none, "https://chat.example", "chat.example:443", true},
		{none, "http://chat.example:5280", "chat.example:5280", true},
		{none, "https://chat.example", "chat.example:5281", false},
		{none, "https://app.example", "chat.example", false},
		{none, "https://[::1]:5281", "[::1]:5281", true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://"+tt.host+"/xmpp-websocket", nil)
		r.Host = tt.host
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if got := tt.h.originAllowed(r); got != tt.want {
			t.Errorf("origins %v: %q on %q allowed = %t, want %t", tt.h.opts.Origins, tt.origin, tt.host, got, tt.want)
		}
	}
}

func TestClientAddr(t *testing.T) {
	h, _ := New(Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}})
	tests := []struct {
		remote string
		xff    []string
		want   string
	}{
		{"192.0.2.1:1234", nil, "192.0.2.1:1234"},
		{"192.0.2.1:1234", []string{"198.51.100.7"}, "192.0.2.1:1234"}, // not a proxy: ignored
		{"127.0.0.1:1234", nil, "127.0.0.1:1234"},
		{"127.0.0.1:1234", []string{"198.51.100.7"}, "198.51.100.7:0"},
		{"127.0.0.1:1234", []string{"203.0.113.9, 198.51.100.7, 10.1.2.3"}, "198.51.100.7:0"},
		{"127.0.0.1:1234", []string{"203.0.113.9", "198.51.100.7"}, "198.51.100.7:0"},
		{"127.0.0.1:1234", []string{"garbage, 10.1.2.3"}, "10.1.2.3:0"},
		{"[::ffff:127.0.0.1]:1234", []string{"2001:db8::1"}, "[2001:db8::1]:0"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := h.clientAddr(r).String(); got != tt.want {
			t.Errorf("clientAddr(%s, %q) = %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
}

func TestSameHost(t *testing.T) {
	u, _ := url.Parse("https://chat.example")
	if !sameHost(u, "CHAT.example") || sameHost(u, "chat.example:8443") || sameHost(u, "other.example") {
		t.Error("sameHost")
	}
}

// FuzzParseBody feeds attacker bytes to the BOSH body parser: it must not
// panic, and a payload it returns is part of the input.
func FuzzParseBody(f *testing.F) {
	f.Add([]byte(`<body xmlns='http://jabber.org/protocol/httpbind' rid='1' sid='x'><presence xmlns='jabber:client'/></body>`))
	f.Add([]byte(`<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost' xmlns:xmpp='urn:xmpp:xbosh' xmpp:restart='true'/>`))
	f.Add([]byte(`<?xml version='1.0'?><body xmlns='http://jabber.org/protocol/httpbind'><![CDATA[x]]></body>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseBody(data)
		if err == nil && !bytes.Contains(data, b.payload) {
			t.Fatalf("payload %q is not in the input", b.payload)
		}
	})
}

// FuzzSplitter checks that chunking never changes what the splitter
// finds, on streams built from the elements of a real one.
func FuzzSplitter(f *testing.F) {
	f.Add(serverStream, 5)
	f.Add(`<stream:stream xmlns='jabber:client'><a><![CDATA[</a>]]></a><!-- x --><b/></stream:stream>`, 1)
	f.Fuzz(func(t *testing.T, stream string, n int) {
		if n <= 0 || n > 1<<12 {
			return
		}
		whole := splitAll(t, stream, len(stream)+1)
		chunked := splitAll(t, stream, n)
		if strings.Join(whole, "\x00") != strings.Join(chunked, "\x00") {
			t.Fatalf("chunks of %d:\n%q\nwhole:\n%q", n, chunked, whole)
		}
	})
}
