package web

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ottr.im/ottr/c2s"
)

// splitAll feeds out to a splitter in chunks of n bytes and returns the
// events, one string each.
func splitAll(t testing.TB, out string, n int) []string {
	s := newSplitter(1 << 20)
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
			// The same error whatever the chunks: the kind is enough.
			kind := "error: markup"
			if errors.Is(err, errOutputTooLarge) {
				kind = "error: too large"
			}
			return append(got, kind)
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
	s := newSplitter(1 << 20)
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
	f.Add([]byte(`<body xmlns='http://jabber.org/protocol/httpbind' rid='1' sid='x' sid=''/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseBody(data)
		if err == nil && !bytes.Contains(data, b.payload) {
			t.Fatalf("payload %q is not in the input", b.payload)
		}
		// The sid that decides the size limit, read from the first
		// bytes only, is the one the request goes to.
		if err == nil && b.sid != "" {
			h, _ := New(Options{})
			s := &boshSession{sid: b.sid}
			h.bosh[b.sid] = s
			for _, n := range []int{len(data), min(len(data), 1<<10)} {
				if got := h.sessionOf(data[:n]); got != nil && got != s || got == nil && n == len(data) {
					t.Fatalf("sessionOf(%q) = %v, want the session of sid %q", data[:n], got, b.sid)
				}
			}
		}
	})
}

// fuzzHeader and fuzzBody wrap a fuzz input that is not a whole stream:
// the input is then the content of a stanza's body, the part of the
// server's output a client controls.
const (
	fuzzHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='f' from='localhost'>`
	fuzzBody   = `<message xmlns="jabber:client" from="a@localhost/r"><body>`
)

// FuzzSplitter compares the splitter with encoding/xml: on any input, the
// chunks do not change what it finds; on any well-formed stream it finds
// the top-level elements encoding/xml finds, byte for byte (only the
// namespace declarations standalone adds differ), so that no text inside
// an element can come out as an element of its own (security review #1).
// An input that is not a stream (it starts with neither "<stream:stream"
// nor "<?xml") is put in the body of a message.
func FuzzSplitter(f *testing.F) {
	f.Add(serverStream, 5)
	f.Add(`<stream:stream xmlns='jabber:client'><a><![CDATA[</a>]]></a><!-- x --><b/></stream:stream>`, 1)
	f.Add(`<stream:stream xmlns='jabber:client'><a><![CDATA[ --> </a><b/><a> ]]></a><!-- ]]> <c/> --><d/></stream:stream>`, 3)
	f.Add(`<![CDATA[ --> </body></message><message from='admin@localhost'><body>x</body></message><message><body> ]]>`, 7)
	f.Add(`<!-- a --> x &lt; <![CDATA[<x>]]><?pi a='>'?><i a='&quot;>' b="'"/>`, 2)
	f.Add("<message to='victim@localhost'><body><![CDATA[ --> </body></message><iq type='set' from='victim@localhost'><query xmlns='jabber:iq:roster'/></iq><message><body> ]]></body></message>", 4)
	f.Fuzz(func(t *testing.T, in string, n int) {
		if n <= 0 || n > 1<<12 {
			return
		}
		stream := in
		if !strings.HasPrefix(in, "<stream:stream") && !strings.HasPrefix(in, "<?xml") {
			stream = fuzzHeader + fuzzBody + in + `</body></message><presence xmlns="jabber:client"/></stream:stream>`
		}
		whole := splitAll(t, stream, len(stream)+1)
		chunked := splitAll(t, stream, n)
		if strings.Join(whole, "\x00") != strings.Join(chunked, "\x00") {
			t.Fatalf("chunks of %d:\n%q\nwhole:\n%q", n, chunked, whole)
		}
		framerAgrees(t, in)
		want, ok := xmlElements(stream)
		if !ok {
			return // not well-formed: encoding/xml has no answer
		}
		var got []string
		for _, ev := range whole {
			if ev != "space" {
				got = append(got, ev)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("splitter:\n%q\nencoding/xml:\n%q", got, want)
		}
		for i := range got {
			if !sameElement(got[i], want[i]) {
				t.Fatalf("event %d: splitter %q, encoding/xml %q\nsplitter:\n%q\nencoding/xml:\n%q", i, got[i], want[i], got, want)
			}
		}
	})
}

// framerLimits are the c2s framer's limits in framerAgrees: generous, so
// that what it refuses it refuses for its form, not its size.
var framerLimits = c2s.GuardLimits{MaxElement: 1 << 16, MaxDepth: 64, MaxAttributes: 256}

// framerAgrees checks the splitter against c2s's framer, the scanner that
// decides what a client may send: every element the framer accepts from
// in, written into the server's output as c2s forwards it, comes out of
// the splitter as that one element, whole, and nothing else does. A
// difference is how a client's text could reach a web client as stanzas
// of its own (security review #1).
func framerAgrees(t *testing.T, in string) {
	t.Helper()
	els, _ := c2s.Frame([]byte(in), framerLimits)
	if len(els) == 0 {
		return
	}
	var b strings.Builder
	b.WriteString(fuzzHeader)
	for _, el := range els {
		b.Write(el)
	}
	b.WriteString(`</stream:stream>`)
	got := splitAll(t, b.String(), len(b.String())+1)
	want := []string{"header"}
	for _, el := range els {
		want = append(want, string(el))
	}
	want = append(want, "end")
	if len(got) != len(want) {
		t.Fatalf("the framer accepted %d elements, the splitter cut their stream into:\n%q\nframer:\n%q", len(els), got, want)
	}
	for i := range got {
		if !sameElement(got[i], want[i]) {
			t.Fatalf("event %d: splitter %q, framer %q", i, got[i], want[i])
		}
	}
}

// xmlElements reads stream with encoding/xml and returns what the
// splitter should find: "header" for a stream header (a restart is one
// at stream level), each top-level element as it is in stream, "end" for
// the stream's closing tag. It reports false when stream is not
// well-formed, or holds what XMPP does not use (a DTD).
func xmlElements(stream string) ([]string, bool) {
	d := xml.NewDecoder(strings.NewReader(stream))
	var out, open []string
	base, start := 0, 0
	for {
		at := d.InputOffset()
		tok, err := d.RawToken()
		if err == io.EOF {
			return out, len(open) == 0 || base == 1 && len(open) == 1 && strings.HasPrefix(open[0], "stream:stream")
		}
		if err != nil {
			return nil, false
		}
		end := int(d.InputOffset())
		switch tok := tok.(type) {
		case xml.StartElement:
			name := tok.Name.Local
			if tok.Name.Space != "" {
				name = tok.Name.Space + ":" + name
			}
			empty := strings.HasSuffix(stream[at:end], "/>")
			if len(open) == base && name == "stream:stream" && !empty {
				out = append(out, "header")
				if base == 0 {
					open = append(open, name)
				}
				base = 1
				// (A restart reads as no element: encoding/xml's empty
				// element check below needs the End token skipped.)
				continue
			}
			if len(open) == base {
				start = int(at)
			}
			open = append(open, name)
		case xml.EndElement:
			name := tok.Name.Local
			if tok.Name.Space != "" {
				name = tok.Name.Space + ":" + name
			}
			if len(open) == 0 || open[len(open)-1] != name {
				return nil, false
			}
			open = open[:len(open)-1]
			switch {
			case len(open) < base:
				out = append(out, "end")
				base = 0
			case len(open) == base:
				out = append(out, stream[start:end])
			}
		case xml.Directive:
			return nil, false
		}
	}
}

// sameElement reports whether the splitter's event got is want, an event
// of xmlElements, allowing the namespace declarations standalone adds
// after the element's name.
func sameElement(got, want string) bool {
	if got == want {
		return true
	}
	if !strings.HasPrefix(got, "<") || !strings.HasPrefix(want, "<") {
		return strings.HasPrefix(got, "header") && want == "header"
	}
	at := 1 + strings.IndexFunc(want[1:], func(r rune) bool { return strings.ContainsRune(" \t\r\n/>", r) })
	if at == 0 || !strings.HasPrefix(got, want[:at]) || !strings.HasSuffix(got, want[at:]) {
		return false
	}
	added := got[at : len(got)-len(want)+at]
	for added != "" {
		rest, ok := strings.CutPrefix(added, " xmlns")
		if !ok {
			return false
		}
		_, rest, ok = strings.Cut(rest, "='")
		if !ok {
			return false
		}
		_, added, ok = strings.Cut(rest, "'")
		if !ok {
			return false
		}
	}
	return true
}

// attackBody is a chat message, as c2s forwards it, whose body holds a
// CDATA section with "-->" and a whole stanza inside: security review #1.
const attackBody = `<message xmlns="jabber:client" from="mallory@localhost/x" to="victim@localhost/web" type="chat"><body><![CDATA[ --> </body></message>` +
	`<iq xmlns="jabber:client" from="victim@localhost" type="set" id="push"><query xmlns="jabber:iq:roster"><item jid="admin@localhost" subscription="both"/></query></iq>` +
	`<message xmlns="jabber:client" from="admin@localhost"><body>forged</body></message><message><body> ]]></body></message>`

func TestSplitterCDATA(t *testing.T) {
	for _, n := range []int{1, 3, 4096} {
		got := splitAll(t, `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`+attackBody+`<presence xmlns="jabber:client"/>`, n)
		want := []string{"header id= from= to= version= lang=", attackBody, `<presence xmlns="jabber:client"/>`}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("chunks of %d:\n%s\nwant\n%s", n, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// A comment ends at "-->" only, not at "]]>" or at its own opening
	// dashes.
	got := splitAll(t, `<stream:stream xmlns='jabber:client'><!-- ]]> <a> --><!--><b/>--><c/>`, 1)
	want := []string{"header id= from= to= version= lang=", `<c xmlns='jabber:client'/>`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("comments:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestWebSocketMessageLimit: until the session is bound a message over
// the pre-bind limit ends the input with policy-violation; after Bound
// the stanza limit applies (security review #5).
func TestWebSocketMessageLimit(t *testing.T) {
	for _, bound := range []bool{false, true} {
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		h, err := New(Options{MaxPrebind: 16 << 10, MaxStanza: 256 << 10, Serve: func(c Conn) bool {
			defer c.Close()
			if bound {
				c.Bound()
			}
			n, err := io.Copy(io.Discard, c)
			done <- result{int(n), err}
			return true
		}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+PathWebSocket, &websocket.DialOptions{Subprotocols: []string{"xmpp"}})
		if err != nil {
			t.Fatal(err)
		}
		msg := strings.Repeat(" ", 64<<10)
		if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		ws.Close(websocket.StatusNormalClosure, "")
		var r result
		select {
		case r = <-done:
		case <-ctx.Done():
			t.Fatal("the session did not end")
		}
		var le *c2s.LimitError
		switch {
		case !bound && (!errors.As(r.err, &le) || le.Err.Err != "policy-violation"):
			t.Errorf("64 KiB before bind: read %d bytes, then %v; want policy-violation", r.n, r.err)
		case !bound && r.n > 32<<10:
			t.Errorf("64 KiB before bind: %d bytes passed on", r.n)
		case bound && (r.err != nil || r.n != len(msg)):
			t.Errorf("64 KiB after bind: read %d bytes, then %v; want all of it", r.n, r.err)
		}
	}
}

// TestSplitterLimit: an element of the server's output that outgrows the
// limit, or markup c2s never writes, is an error, not a growing buffer.
func TestSplitterLimit(t *testing.T) {
	emit := func(event, []byte, streamHeader) error { return nil }
	s := newSplitter(1 << 10)
	if err := s.feed([]byte(`<stream:stream xmlns='jabber:client'><message><body>`+strings.Repeat("x", 900)), emit); err != nil {
		t.Fatalf("under the limit: %v", err)
	}
	if err := s.feed([]byte(strings.Repeat("x", 200)), emit); !errors.Is(err, errOutputTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	s = newSplitter(1 << 10)
	if err := s.feed([]byte(`<stream:stream xmlns='jabber:client'><!DOCTYPE x>`), emit); !errors.Is(err, errMarkup) {
		t.Fatalf("a DTD: %v", err)
	}
}
