package server_test

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

// rawClient speaks XMPP by hand for the cases a well-behaved client
// library refuses to produce: wrong hosts, bad SASL payloads, retries.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	dec  *xml.Decoder
}

// element is a generic decoded element.
type element struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []element  `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (e element) child(local string) (element, bool) {
	for _, c := range e.Children {
		if c.XMLName.Local == local {
			return c, true
		}
	}
	return element{}, false
}

func (e element) String() string {
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

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	t.Cleanup(func() { conn.Close() })
	r := &rawClient{t: t, conn: conn}
	r.dec = xml.NewDecoder(bufio.NewReader(conn))
	return r
}

func (r *rawClient) write(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.conn, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// open sends a stream header to host and reads the server's header and
// features.
func (r *rawClient) open(host string) element {
	r.t.Helper()
	r.write(fmt.Sprintf(`<?xml version='1.0'?><stream:stream to='%s' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, host))
	for {
		tok, err := r.dec.Token()
		if err != nil {
			r.t.Fatalf("reading stream header: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			break
		}
	}
	return r.read()
}

// read decodes the next element.
func (r *rawClient) read() element {
	r.t.Helper()
	for {
		tok, err := r.dec.Token()
		if err != nil {
			r.t.Fatalf("read: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			var e element
			if err := r.dec.DecodeElement(&e, &se); err != nil {
				r.t.Fatalf("decode: %v", err)
			}
			return e
		}
	}
}

// startTLS upgrades the stream and opens a new one.
func (r *rawClient) startTLS(cfg *tls.Config, host string) element {
	r.t.Helper()
	r.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if e := r.read(); e.XMLName.Local != "proceed" {
		r.t.Fatalf("starttls: got %s", e)
	}
	tc := tls.Client(r.conn, cfg)
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("handshake: %v", err)
	}
	r.conn = tc
	r.dec = xml.NewDecoder(bufio.NewReader(tc))
	return r.open(host)
}

// auth sends one <auth/> with the raw payload and returns the answer.
func (r *rawClient) auth(mech string, payload []byte) element {
	r.t.Helper()
	r.write(fmt.Sprintf(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>`, mech, base64.StdEncoding.EncodeToString(payload)))
	return r.read()
}

// expectClosed reads until the server closes the stream and returns the
// stream error condition it sent ("" for none).
func (r *rawClient) expectStreamError() string {
	r.t.Helper()
	cond := ""
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return cond
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "error" && se.Name.Space == "http://etherx.jabber.org/streams" {
			var e element
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
