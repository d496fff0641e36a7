package c2s

import (
	"errors"
	"strings"
	"testing"
)

var testLimits = GuardLimits{MaxElement: 1024, MaxDepth: 8, MaxAttributes: 8}

const header = `<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

func scanAll(in string, chunk int) (int, error) {
	g := newGuard(nil, testLimits)
	n := 0
	for len(in) > 0 {
		k := chunk
		if k > len(in) {
			k = len(in)
		}
		ok, err := g.scan([]byte(in[:k]))
		n += ok
		if err != nil {
			return n, err
		}
		in = in[k:]
	}
	return n, nil
}

func TestGuard(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // "" for accepted, else the stream error condition
	}{
		{"stream and stanzas", header + `<message to='a@b'><body>x &amp; y</body></message> <presence/>` + "\n\t" + `</stream:stream>`, ""},
		{"cdata", header + `<message><body><![CDATA[<not> a ]] tag]]></body></message>`, ""},
		{"quotes in attributes", header + `<message id="a'b>c" to='x"y/>'><body/></message>`, ""},
		{"no declaration", `<stream:stream xmlns='jabber:client'>`, ""},
		{"comment", header + `<!-- hi -->`, "restricted-xml"},
		{"comment in stanza", header + `<message><!-- hi --></message>`, "restricted-xml"},
		{"doctype", `<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a "b">]>` + header, "restricted-xml"},
		{"entity decl in stanza", header + `<message><!ENTITY x "y"></message>`, "restricted-xml"},
		{"pi", header + `<?php echo 1 ?>`, "restricted-xml"},
		{"late declaration", header + `<message/><?xml version='1.0'?>`, "restricted-xml"},
		{"declaration lookalike", `<?xmlfoo?>`, "restricted-xml"},
		{"stanza too large", header + `<message><body>` + strings.Repeat("x", 2000) + `</body></message>`, "policy-violation"},
		{"header too large", `<stream:stream ` + strings.Repeat("a", 2000), "policy-violation"},
		{"whitespace flood", header + strings.Repeat(" ", 2000), "policy-violation"},
		{"too deep", header + `<message>` + strings.Repeat("<a>", 10), "policy-violation"},
		{"deep enough", header + `<message>` + strings.Repeat("<a>", 8) + strings.Repeat("</a>", 8) + `</message>`, ""},
		{"too many attributes", header + `<message` + strings.Repeat(" a='1'", 9) + `/>`, "policy-violation"},
		{"many small stanzas", header + strings.Repeat(`<message><body>`+strings.Repeat("x", 500)+`</body></message>`, 50), ""},
	} {
		for _, chunk := range []int{1, 7, 4096} {
			_, err := scanAll(tc.in, chunk)
			got := ""
			var le *LimitError
			if errors.As(err, &le) {
				got = le.Err.Err
			} else if err != nil {
				t.Fatalf("%s: unexpected error %v", tc.name, err)
			}
			if got != tc.want {
				t.Errorf("%s (chunks of %d): got %q, want %q", tc.name, chunk, got, tc.want)
			}
		}
	}
}

func TestGuardRestart(t *testing.T) {
	g := newGuard(nil, testLimits)
	if _, err := g.scan([]byte(header + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AA==</auth>`)); err != nil {
		t.Fatal(err)
	}
	// A new stream header after SASL success, declaration included.
	g.restart()
	if _, err := g.scan([]byte(header + `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)); err != nil {
		t.Fatal(err)
	}
	// Without restart a second declaration is refused.
	if _, err := g.scan([]byte(`<?xml version='1.0'?>`)); err == nil {
		t.Fatal("declaration inside a stream accepted")
	}
}

func TestGuardKeepsBytesBeforeViolation(t *testing.T) {
	in := header + `<message/><!--x-->`
	n, err := scanAll(in, 4096)
	if err == nil {
		t.Fatal("comment accepted")
	}
	if want := strings.Index(in, "<!--") + 2; n != want {
		t.Fatalf("passed %d bytes before the violation, want %d", n, want)
	}
}

// FuzzGuard checks the scanner never panics, and that the verdict does
// not depend on how the input is split into reads.
func FuzzGuard(f *testing.F) {
	f.Add(header + `<message to='a@b'><body>hi</body></message>`)
	f.Add(header + `<message><body><![CDATA[x]]></body></message><!-- c -->`)
	f.Add(`<?xml version='1.0'?><!DOCTYPE a>`)
	f.Fuzz(func(t *testing.T, in string) {
		n1, err1 := scanAll(in, 4096)
		n2, err2 := scanAll(in, 3)
		if (err1 == nil) != (err2 == nil) || n1 != n2 {
			t.Fatalf("split changes the verdict: %d %v / %d %v", n1, err1, n2, err2)
		}
	})
}
