package xmpptest

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Raw speaks XMPP by hand for the cases a well-behaved client
// library refuses to produce: wrong hosts, bad SASL payloads, retries.
type Raw struct {
	t    testing.TB
	conn net.Conn
	dec  *xml.Decoder
}

// Element is a generic decoded element.
type Element struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []Element  `xml:",any"`
	Text     string     `xml:",chardata"`
}

// Child returns the first child with the given local name.
func (e Element) Child(local string) (Element, bool) {
	for _, c := range e.Children {
		if c.XMLName.Local == local {
			return c, true
		}
	}
	return Element{}, false
}

// String renders the element for failure messages.
func (e Element) String() string {
	var b strings.Builder
	b.WriteString("<" + e.XMLName.Local)
	for _, a := range e.Attrs {
		fmt.Fprintf(&b, " %s=%q", a.Name.Local, a.Value)
	}
	b.WriteString(">")
	for _, c := range e.Children {
		b.WriteString(c.String())
	}
	b.WriteString(strings.TrimSpace(e.Text))
	b.WriteString("</" + e.XMLName.Local + ">")
	return b.String()
}

// DialRaw connects to addr; the connection closes when the test ends.
func DialRaw(t testing.TB, addr string) *Raw {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return NewRaw(t, conn)
}

// NewRaw wraps a connection the test owns (a dialled one, or one end of
// net.Pipe): it closes when the test ends, and no read or write of it
// waits past 15 s.
func NewRaw(t testing.TB, conn net.Conn) *Raw {
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	t.Cleanup(func() { conn.Close() })
	r := &Raw{t: t, conn: conn}
	r.dec = xml.NewDecoder(bufio.NewReader(conn))
	return r
}

// TryWrite sends raw text and returns the error, for writes the server
// may refuse by closing.
func (r *Raw) TryWrite(s string) (int, error) {
	return io.WriteString(r.conn, s)
}

// Write sends raw text.
func (r *Raw) Write(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.conn, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// Open sends a stream header to host and reads the server's header and
// features.
func (r *Raw) Open(host string) Element {
	r.t.Helper()
	r.Write(fmt.Sprintf(`<?xml version='1.0'?><stream:stream to='%s' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, host))
	for {
		tok, err := r.dec.Token()
		if err != nil {
			r.t.Fatalf("reading stream header: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			break
		}
	}
	return r.Read()
}

// Read decodes the next element.
func (r *Raw) Read() Element {
	r.t.Helper()
	for {
		tok, err := r.dec.Token()
		if err != nil {
			r.t.Fatalf("read: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			var e Element
			if err := r.dec.DecodeElement(&e, &se); err != nil {
				r.t.Fatalf("decode: %v", err)
			}
			return e
		}
	}
}

// StartTLS upgrades the stream and opens a new one.
func (r *Raw) StartTLS(cfg *tls.Config, host string) Element {
	r.t.Helper()
	r.Write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if e := r.Read(); e.XMLName.Local != "proceed" {
		r.t.Fatalf("starttls: got %s", e)
	}
	tc := tls.Client(r.conn, cfg)
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("handshake: %v", err)
	}
	r.conn = tc
	r.dec = xml.NewDecoder(bufio.NewReader(tc))
	return r.Open(host)
}

// Auth sends one <auth/> with the raw payload and returns the answer.
func (r *Raw) Auth(mech string, payload []byte) Element {
	r.t.Helper()
	r.Write(fmt.Sprintf(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>`, mech, base64.StdEncoding.EncodeToString(payload)))
	return r.Read()
}

// ExpectStreamError reads until the server closes the stream and returns the
// stream error condition it sent ("" for none).
func (r *Raw) ExpectStreamError() string {
	r.t.Helper()
	cond := ""
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return cond
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "error" && se.Name.Space == "http://etherx.jabber.org/streams" {
			var e Element
			if err := r.dec.DecodeElement(&e, &se); err != nil {
				return cond
			}
			for _, c := range e.Children {
				if c.XMLName.Local != "text" {
					cond = c.XMLName.Local
				}
			}
		}
		if ee, ok := tok.(xml.EndElement); ok && ee.Name.Local == "stream" {
			return cond
		}
	}
}

// Token returns the next raw token (whitespace included).
func (r *Raw) Token() (xml.Token, error) {
	tok, err := r.dec.Token()
	return xml.CopyToken(tok), err
}

// Bind authenticates with mech and payload, restarts the stream and binds
// resource, returning the full JID. It starts with STARTTLS unless cfg is
// nil (a stream that is secure without it).
func (r *Raw) Bind(cfg *tls.Config, host, mech string, payload []byte, resource string) string {
	r.t.Helper()
	r.Open(host)
	if cfg != nil {
		r.StartTLS(cfg, host)
	}
	if e := r.Auth(mech, payload); e.XMLName.Local != "success" {
		r.t.Fatalf("auth: %s", e)
	}
	r.Open(host)
	return r.BindResource(resource)
}

// BindResource binds resource on a stream past authentication (RFC 6120
// §7) and returns the full JID, failing the test when the answer has
// none.
func (r *Raw) BindResource(resource string) string {
	r.t.Helper()
	r.Write(fmt.Sprintf(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>`, resource))
	e := r.Read()
	b, ok := e.Child("bind")
	if !ok {
		r.t.Fatalf("bind: %s", e)
	}
	j, _ := b.Child("jid")
	return strings.TrimSpace(j.Text)
}

// Conn returns the connection (TLS after StartTLS), for benchmarks that
// write and read bytes directly.
func (r *Raw) Conn() net.Conn { return r.conn }

// Close closes the connection.
func (r *Raw) Close() error { return r.conn.Close() }
