package c2s

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"ottr.im/ottr/element"
)

type fuzzAuth struct{}

func (fuzzAuth) Authenticate(_ context.Context, c Credentials) error {
	if c.Secret == "good" {
		return nil
	}
	return io.EOF
}

type fuzzRouter struct{}

func (fuzzRouter) Bind(context.Context, *Session) error                    { return nil }
func (fuzzRouter) Unbind(context.Context, *Session)                        {}
func (fuzzRouter) Reroute(context.Context, *Session, *element.Stanza)      {}
func (fuzzRouter) Resumed(context.Context, *Session)                       {}
func (fuzzRouter) Route(_ context.Context, s *Session, st *element.Stanza) { s.Deliver(st) }

var fuzzMech = sasl.Mechanism{Name: "PLAIN", Start: sasl.Plain.Start, Next: sasl.Plain.Next}

// FuzzStream feeds arbitrary client bytes to a whole c2s connection
// (negotiation without TLS, SASL, bind, stanzas): it must never panic and
// always end, whatever arrives.
func FuzzStream(f *testing.F) {
	login := header +
		`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + base64.StdEncoding.EncodeToString([]byte("\x00u\x00good")) + `</auth>` +
		header + `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>`
	f.Add(login + `<message to='u@localhost/r' type='chat'><body>hi</body></message></stream:stream>`)
	f.Add(login + `<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq><presence/>`)
	f.Add(header + `<message/>`)
	f.Add(header + `<!-- x -->`)
	f.Add(`<?xml version='1.0'?><!DOCTYPE a>`)
	f.Add(login + `<message>` + "\xff" + `</message>`)
	f.Add(login + `<r xmlns='urn:xmpp:sm:3'/><sm:r xmlns:sm='urn:xmpp:sm:3'/><enable xmlns='urn:xmpp:sm:3'/>`)
	f.Add(login + `<enable xmlns='urn:xmpp:sm:3' resume='true' max='60'/><r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='4294967295'/>`)
	f.Add(login + `<r xmlns='urn:test:seam'/><s:r xmlns:s='urn:test:seam'/>`)
	// Security review #10, #11, #5: whitespace between every element,
	// input that is not XML, another encoding, an oversized header.
	f.Add(" \n" + strings.ReplaceAll(login, "><", ">\n <") + "\n<presence/>\n")
	f.Add("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
	f.Add(`<?xml version='1.0' encoding='ISO-8859-1'?>` + header[len(`<?xml version='1.0'?>`):])
	f.Add(header + strings.Repeat(" ", 5000) + `<auth/>`)
	f.Add(`<stream:stream xmlns='jabber:client' to='localhost' x='` + strings.Repeat("x", 5000) + `'>`)
	cfg := (&Config{
		Serves:     func(d string) bool { return d == "localhost" },
		RequireTLS: false,
		Mechanisms: []sasl.Mechanism{fuzzMech},
		Auth:       fuzzAuth{},
		Router:     fuzzRouter{},
		Elements: map[xml.Name]ElementHandler{{Space: "urn:test:seam", Local: "r"}: ElementHandlerFunc(
			func(_ context.Context, s *Session, _ Element) error {
				s.DeliverRaw([]byte(`<a xmlns='urn:test:seam'/>`))
				return nil
			})},
		Logger:           slog.New(slog.DiscardHandler),
		NegotiateTimeout: 2 * time.Second,
		CloseGrace:       50 * time.Millisecond,
		Guard:            GuardLimits{MaxElement: 4096, MaxDepth: 8, MaxAttributes: 16},
	}).WithDefaults()
	f.Fuzz(func(t *testing.T, in string) {
		server, client := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			Serve(context.Background(), pipeConn{server}, cfg)
		}()
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(client, in)
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Serve did not return for input %q", in)
		}
	})
}

// pipeConn gives net.Pipe a TCP-like remote address.
type pipeConn struct{ net.Conn }

func (pipeConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
