package c2s

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
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
		// Security review #10 and #11: whitespace between elements is
		// fine, anything else outside an element is not.
		{"whitespace between elements", " \n" + header + "\n<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\r\n\t <auth/> ", ""},
		{"whitespace before the header", "\n\n" + `<stream:stream xmlns='jabber:client'>`, ""},
		{"http request", "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "not-well-formed"},
		{"tls client hello", "\x16\x03\x01\x02\x00\x01", "not-well-formed"},
		{"text after the declaration", `<?xml version='1.0'?>hello`, "not-well-formed"},
		{"text at stream level", header + `hello<message/>`, "bad-format"},
		{"text in a stanza", header + `<message>hello</message>`, ""},
		{"encoding utf-8", `<?xml version='1.0' encoding='utf-8'?>` + header[len(`<?xml version='1.0'?>`):], ""},
		{"encoding UTF-8", `<?xml version="1.0" encoding="UTF-8" ?>` + header[len(`<?xml version='1.0'?>`):], ""},
		{"encoding latin-1", `<?xml version='1.0' encoding='ISO-8859-1'?>` + header[len(`<?xml version='1.0'?>`):], "unsupported-encoding"},
		{"encoding utf-16", `<?xml version='1.0' encoding="UTF-16"?>`, "unsupported-encoding"},
		{"encoding utf-8 prefix", `<?xml version='1.0' encoding='utf-8x'?>`, "unsupported-encoding"},
		{"encoding cut short", `<?xml version='1.0' encoding='utf'?>`, "unsupported-encoding"},
		{"encoding-like name", `<?xml version='1.0' xencoding='latin1'?>`, ""},
		{"whitespace flood before starttls", header + strings.Repeat("\n", 64<<10) + `<starttls/>`, "policy-violation"},
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

// TestGuardPrebind: before a resource is bound, MaxPrebind bounds an
// element, the stream header included (security review #5).
func TestGuardPrebind(t *testing.T) {
	lim := GuardLimits{MaxElement: 8192, MaxDepth: 8, MaxAttributes: 8, MaxPrebind: 1024}
	for _, tc := range []struct {
		name, in string
		fail     bool
	}{
		{"small auth", header + `<auth mechanism='PLAIN'>` + strings.Repeat("A", 900) + `</auth>`, false},
		{"large auth", header + `<auth mechanism='PLAIN'>` + strings.Repeat("A", 1100), true},
		{"large header attribute", `<stream:stream a='` + strings.Repeat("x", 1100), true},
		{"whitespace run", header + strings.Repeat(" ", 1100), true},
	} {
		g := newGuard(nil, lim)
		_, err := g.scan([]byte(tc.in))
		var le *LimitError
		if got := errors.As(err, &le) && le.Err.Err == "policy-violation"; got != tc.fail {
			t.Errorf("%s: err %v, want a policy violation: %v", tc.name, err, tc.fail)
		}
	}
	// Larger than MaxElement: MaxElement holds.
	if got := (GuardLimits{MaxElement: 4096, MaxPrebind: 16384}).prebind().MaxElement; got != 4096 {
		t.Errorf("prebind MaxElement = %d, want 4096", got)
	}
	if got := (GuardLimits{MaxElement: 4096}).prebind().MaxElement; got != 4096 {
		t.Errorf("prebind MaxElement without MaxPrebind = %d, want 4096", got)
	}
}

// TestGuardDropsWhitespace: mellium's decoder is not given whitespace
// between stream-level elements (it ends negotiation on one), but gets
// every other byte, whitespace in elements included (security review
// #10).
func TestGuardDropsWhitespace(t *testing.T) {
	in := "\n" + header + "\n <starttls a=' x '/>\r\n<auth>\n A \n</auth>\t"
	want := header + "<starttls a=' x '/><auth>\n A \n</auth>"
	for _, tc := range []struct {
		name string
		read func(g *guard) (string, error)
	}{
		{"ReadByte", func(g *guard) (string, error) {
			var b []byte
			for {
				c, err := g.ReadByte()
				if err != nil {
					return string(b), err
				}
				b = append(b, c)
			}
		}},
		{"Read", func(g *guard) (string, error) {
			var b []byte
			p := make([]byte, 5)
			for {
				n, err := g.Read(p)
				if n == 0 && err == nil {
					return string(b), errors.New("Read returned 0, nil")
				}
				b = append(b, p[:n]...)
				if err != nil {
					return string(b), err
				}
			}
		}},
	} {
		g := newGuard(readerConn{strings.NewReader(in)}, testLimits)
		got, err := tc.read(g)
		if !errors.Is(err, io.EOF) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if got != want {
			t.Errorf("%s gave\n%q\nwant\n%q", tc.name, got, want)
		}
	}
}

// readerConn is a net.Conn that reads from a reader.
type readerConn struct{ r io.Reader }

func (c readerConn) Read(p []byte) (int, error)     { return c.r.Read(p) }
func (readerConn) Write(p []byte) (int, error)      { return len(p), nil }
func (readerConn) Close() error                     { return nil }
func (readerConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (readerConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (readerConn) SetDeadline(time.Time) error      { return nil }
func (readerConn) SetReadDeadline(time.Time) error  { return nil }
func (readerConn) SetWriteDeadline(time.Time) error { return nil }

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
	f.Add("\n" + header + "\n <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\r\n")
	f.Add("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
	f.Add(`<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream>`)
	f.Add(`<?xml version="1.0" encoding="UTF-8"?><stream:stream>`)
	f.Add(header + `text<message/>`)
	f.Fuzz(func(t *testing.T, in string) {
		n1, err1 := scanAll(in, 4096)
		n2, err2 := scanAll(in, 3)
		if (err1 == nil) != (err2 == nil) || n1 != n2 {
			t.Fatalf("split changes the verdict: %d %v / %d %v", n1, err1, n2, err2)
		}
	})
}
