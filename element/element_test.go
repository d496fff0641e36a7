package element

import (
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

func read(t *testing.T, x string, lim Limits) (*Stanza, error) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(x))
	tok, err := d.Token()
	if err != nil {
		t.Fatal(err)
	}
	return Read(tok.(xml.StartElement).Copy(), d, lim)
}

func TestReadRoundTrip(t *testing.T) {
	in := `<message xmlns='jabber:client' xmlns:x='urn:x' to='Bob@Example.org/r' from='a@example.org' id='1' type='chat' xml:lang='en' x:extra='y'><body>hi &amp; bye</body><x:thing a='b'><deep/></x:thing></message>`
	st, err := read(t, in, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if st.To.String() != "bob@example.org/r" || st.From.String() != "a@example.org" || st.ID != "1" || st.Type != "chat" {
		t.Fatalf("addressing %+v", st)
	}
	if got := st.ChildText(NSClient, "body"); got != "hi & bye" {
		t.Fatalf("body %q", got)
	}
	if _, ok := st.Child("urn:x", "thing"); !ok {
		t.Fatal("child urn:x thing not found")
	}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unmarshal(b)
	if err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	b2, _ := back.Marshal()
	if string(b) != string(b2) {
		t.Fatalf("not stable:\n%s\n%s", b, b2)
	}
	if back.ChildText(NSClient, "body") != "hi & bye" || back.To.String() != "bob@example.org/r" {
		t.Fatalf("round trip lost data: %s", b2)
	}
	for _, want := range []string{`lang="en"`, `extra="y"`, `<deep`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("marshalled %s lacks %s", b, want)
		}
	}
}

func TestReadLimits(t *testing.T) {
	deep := "<message>" + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + "</message>"
	if _, err := read(t, deep, DefaultLimits); err != ErrTooDeep {
		t.Fatalf("deep: %v", err)
	}
	big := "<message><body>" + strings.Repeat("x", 300<<10) + "</body></message>"
	if _, err := read(t, big, DefaultLimits); err != ErrTooLarge {
		t.Fatalf("big: %v", err)
	}
	many := "<message>" + strings.Repeat("<a/>", 100) + "</message>"
	if _, err := read(t, many, Limits{MaxTokens: 50, MaxBytes: 1 << 20, MaxDepth: 5}); err != ErrTooLarge {
		t.Fatalf("many: %v", err)
	}
	st, err := read(t, `<message to='a@b@c'><body>x</body></message>`, DefaultLimits)
	var ae *AddrError
	if !errorsAs(err, &ae) || ae.Attr != "to" || st == nil {
		t.Fatalf("bad to: %v %v", st, err)
	}
}

func errorsAs(err error, target **AddrError) bool {
	e, ok := err.(*AddrError)
	if ok {
		*target = e
	}
	return ok
}

func TestReplies(t *testing.T) {
	st, err := read(t, `<iq type='get' id='q' to='example.org' from='a@example.org/r'><query xmlns='urn:q'/></iq>`, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsIQRequest() {
		t.Fatal("not a request")
	}
	p, ok := st.Payload()
	if !ok || p.Name.Space != "urn:q" {
		t.Fatalf("payload %v", p)
	}
	r := st.Reply(jid.MustParse("example.org"), nil)
	if r.Type != "result" || r.ID != "q" || r.To.String() != "a@example.org/r" {
		t.Fatalf("reply %+v", r)
	}
	e := st.ErrorReply(jid.MustParse("example.org"), stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
	b, _ := e.Marshal()
	for _, want := range []string{`type="error"`, `service-unavailable`, `urn:q`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("error reply %s lacks %s", b, want)
		}
	}
	if err := r.Append(xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:z", Local: "z"}})); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Child("urn:z", "z"); !ok {
		t.Fatal("appended child missing")
	}
}

func FuzzRead(f *testing.F) {
	f.Add(`<message to='a@b' type='chat'><body>x</body></message>`)
	f.Add(`<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>`)
	f.Add(`<presence><priority>5</priority><x xmlns='a' xmlns:b='c' b:d='e'/></presence>`)
	f.Fuzz(func(t *testing.T, s string) {
		d := xml.NewDecoder(strings.NewReader(s))
		tok, err := d.Token()
		if err != nil {
			return
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			return
		}
		st, err := Read(start.Copy(), d, Limits{MaxTokens: 256, MaxBytes: 4096, MaxDepth: 8})
		if err != nil {
			return
		}
		b, err := st.Marshal()
		if err != nil {
			return
		}
		if _, err := Unmarshal(b); err != nil && Is(start.Name) {
			t.Fatalf("marshalled %q does not parse back: %v", b, err)
		}
	})
}

// FuzzJID checks the addressing of stanzas: whatever to and from hold,
// Read never panics, and an address it accepts prints back to a string
// that parses to the same JID.
func FuzzJID(f *testing.F) {
	for _, s := range []string{"alice@example.org", "Alice@Example.ORG/Phone", "example.org", "a@b@c", "@x", "x/", "ünïcode@例え.jp/r", "a@[::1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		x := "<message to='" + xmlEscape(s) + "'/>"
		st, err := read(t, x, DefaultLimits)
		if err != nil || st.To.Equal(jid.JID{}) {
			return
		}
		back, err := jid.Parse(st.To.String())
		if err != nil {
			t.Fatalf("%q parsed to %q, which does not parse: %v", s, st.To.String(), err)
		}
		if !back.Equal(st.To) {
			t.Fatalf("%q: %q then %q", s, st.To, back)
		}
	})
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&apos;")
}
