package c2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"
)

func stack() string { return string(debug.Stack()) }

// emptyFeature lists <name xmlns=space/> with the given children.
func listElement(e xmlstream.TokenWriter, start xml.StartElement, children ...string) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	for _, c := range children {
		child := xml.StartElement{Name: xml.Name{Local: c}}
		if err := e.EncodeToken(child); err != nil {
			return err
		}
		if err := e.EncodeToken(child.End()); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// startTLS negotiates STARTTLS (RFC 6120 §5), listed as required or
// optional as configured. It is mellium's feature with our own upgrade:
// TLS goes over the socket and a fresh guard over TLS, so that the guard
// scans plaintext.
func startTLS(cfg *tls.Config, required bool, n *negotiation) xmpp.StreamFeature {
	f := xmpp.StartTLS(cfg)
	f.List = func(ctx context.Context, e xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
		if required {
			return true, listElement(e, start, "required")
		}
		return false, listElement(e, start)
	}
	f.Negotiate = func(ctx context.Context, s *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
		if _, err := io.WriteString(n.conn, `<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`); err != nil {
			return 0, nil, err
		}
		n.guard = newGuard(tls.Server(n.conn, cfg), n.cfg.Guard)
		n.restarts++
		return xmpp.Secure, n.guard, nil
	}
	return f
}

// sessionFeature advertises the RFC 3921 session element as optional
// (RFC 6121 Appendix E) for old clients; the read loop answers their
// request.
func sessionFeature() xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:      xml.Name{Space: nsSession, Local: "session"},
		Necessary: xmpp.Authn,
		List: func(ctx context.Context, e xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			return false, listElement(e, start, "optional")
		},
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return false, nil, d.Skip()
		},
	}
}

// announced lists an informational feature after authentication.
func announced(name xml.Name) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       name,
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		List: func(ctx context.Context, e xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			return false, listElement(e, start)
		},
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return false, nil, d.Skip()
		},
	}
}

// saslFeature negotiates SASL with retries: a failed attempt is answered
// with <failure/> and the client may try again, up to MaxAuthAttempts.
func saslFeature(n *negotiation) xmpp.StreamFeature {
	var necessary xmpp.SessionState
	if n.cfg.RequireTLS {
		necessary = xmpp.Secure
	}
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsSASL, Local: "mechanisms"},
		Necessary:  necessary,
		Prohibited: xmpp.Authn,
		List: func(ctx context.Context, e xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			if err := e.EncodeToken(start); err != nil {
				return true, err
			}
			for _, m := range n.cfg.Mechanisms {
				mech := xml.StartElement{Name: xml.Name{Local: "mechanism"}}
				if err := e.EncodeToken(mech); err != nil {
					return true, err
				}
				if err := e.EncodeToken(xml.CharData(m.Name)); err != nil {
					return true, err
				}
				if err := e.EncodeToken(mech.End()); err != nil {
					return true, err
				}
			}
			return true, e.EncodeToken(start.End())
		},
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			return n.sasl(ctx, s)
		},
	}
}

// saslElement is an <auth/>, <response/> or <abort/> from the client.
type saslElement struct {
	XMLName   xml.Name
	Mechanism string `xml:"mechanism,attr"`
	Payload   string `xml:",chardata"`
}

// maxSASLPayload bounds the base64 text of one SASL element.
const maxSASLPayload = 8 << 10

func (n *negotiation) sasl(ctx context.Context, s *xmpp.Session) (xmpp.SessionState, io.ReadWriter, error) {
	r := s.TokenReader()
	defer r.Close()
	w := s.TokenWriter()
	defer w.Close()
	d := xml.NewTokenDecoder(r)
	fail := func(condition, text string) error {
		return writeSASLFailure(w, condition, text)
	}
	for attempt := 1; ; attempt++ {
		el, err := readSASL(d)
		if err != nil {
			return 0, nil, err
		}
		switch el.XMLName {
		case xml.Name{Space: nsSASL, Local: "abort"}:
			if err := fail("aborted", ""); err != nil {
				return 0, nil, err
			}
			continue
		case xml.Name{Space: nsSASL, Local: "auth"}:
		default:
			return 0, nil, streamError(stream.NotAuthorized, "authenticate first")
		}
		if attempt > n.cfg.MaxAuthAttempts {
			n.logger.Info("too many SASL attempts", "attempts", attempt-1)
			fail("not-authorized", "too many attempts")
			return 0, nil, streamError(stream.PolicyViolation, "too many authentication attempts")
		}
		mech, ok := n.mechanism(el.Mechanism)
		if !ok {
			n.logger.Info("sasl failed", "mechanism", el.Mechanism, "reason", "unknown mechanism")
			if err := fail("invalid-mechanism", ""); err != nil {
				return 0, nil, err
			}
			continue
		}
		payload := el.Payload
		if strings.TrimSpace(payload) == "" {
			// No initial response: send an empty challenge and take the
			// payload from the <response/> (RFC 6120 §6.4.2).
			if err := writeSASL(w, "challenge", "="); err != nil {
				return 0, nil, err
			}
			resp, err := readSASL(d)
			if err != nil {
				return 0, nil, err
			}
			switch resp.XMLName {
			case xml.Name{Space: nsSASL, Local: "response"}:
				payload = resp.Payload
			case xml.Name{Space: nsSASL, Local: "abort"}:
				if err := fail("aborted", ""); err != nil {
					return 0, nil, err
				}
				continue
			default:
				return 0, nil, streamError(stream.NotAuthorized, "authenticate first")
			}
		}
		msg, err := decodeSASL(payload)
		if err != nil {
			n.logger.Info("sasl failed", "mechanism", mech.Name, "reason", "incorrect encoding")
			if err := fail("incorrect-encoding", ""); err != nil {
				return 0, nil, err
			}
			continue
		}
		cond := n.step(ctx, s, mech, msg)
		if cond == "" {
			// The client's next bytes open a new stream.
			n.guard.restart()
			if err := writeSASL(w, "success", ""); err != nil {
				return 0, nil, err
			}
			if err := w.Flush(); err != nil {
				return 0, nil, err
			}
			n.restarts++
			n.logger.Info("authenticated", "mechanism", mech.Name, "user", n.user+"@"+n.host)
			return xmpp.Authn, n.guard, nil
		}
		if err := fail(cond, ""); err != nil {
			return 0, nil, err
		}
	}
}

// step runs one single-message mechanism and returns "" on success or the
// SASL failure condition.
func (n *negotiation) step(ctx context.Context, s *xmpp.Session, mech sasl.Mechanism, msg []byte) string {
	n.authErr = nil
	var user string
	permissions := func(neg *sasl.Negotiator) bool {
		username, secret, authzid := neg.Credentials()
		err := n.cfg.Auth.Authenticate(ctx, Credentials{
			Mechanism: mech.Name,
			Host:      n.host,
			Authzid:   string(authzid),
			Username:  string(username),
			Secret:    string(secret),
			Remote:    remoteAddr(n.conn),
		})
		if err != nil {
			n.authErr = err
			return false
		}
		user = string(username)
		return true
	}
	server := sasl.NewServer(mech, permissions)
	more, _, err := server.Step(msg)
	switch {
	case err == nil && !more && user != "":
		n.user = user
		return ""
	case err == nil:
		// Every offered mechanism finishes in one step.
		n.logger.Info("sasl failed", "mechanism", mech.Name, "reason", "unexpected extra step")
		return "malformed-request"
	case errors.Is(err, sasl.ErrInvalidChallenge):
		n.logger.Info("sasl failed", "mechanism", mech.Name, "reason", "malformed payload")
		return "malformed-request"
	}
	cond := "not-authorized"
	var c interface{ SASLCondition() string }
	if errors.As(n.authErr, &c) {
		cond = c.SASLCondition()
	}
	reason := "not authorized"
	if n.authErr != nil {
		reason = n.authErr.Error()
	}
	n.logger.Info("sasl failed", "mechanism", mech.Name, "reason", reason, "condition", cond)
	return cond
}

func (n *negotiation) mechanism(name string) (sasl.Mechanism, bool) {
	for _, m := range n.cfg.Mechanisms {
		if m.Name == name {
			return m, true
		}
	}
	return sasl.Mechanism{}, false
}

// readSASL reads the next element of the SASL exchange, skipping
// whitespace.
func readSASL(d *xml.Decoder) (saslElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return saslElement{}, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			continue
		case xml.StartElement:
			var el saslElement
			if err := d.DecodeElement(&el, &t); err != nil {
				return saslElement{}, err
			}
			if len(el.Payload) > maxSASLPayload {
				return saslElement{}, streamError(stream.PolicyViolation, "SASL payload too large")
			}
			return el, nil
		default:
			return saslElement{}, streamError(stream.RestrictedXML, "")
		}
	}
}

func decodeSASL(payload string) ([]byte, error) {
	payload = strings.TrimSpace(payload)
	if payload == "=" {
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(payload)
}

func writeSASL(w xmlstream.TokenWriteFlusher, local, b64 string) error {
	start := xml.StartElement{Name: xml.Name{Space: nsSASL, Local: local}}
	var inner xml.TokenReader
	if b64 != "" {
		inner = xmlstream.Token(xml.CharData(b64))
	}
	if _, err := xmlstream.Copy(w, xmlstream.Wrap(inner, start)); err != nil {
		return err
	}
	return w.Flush()
}

func writeSASLFailure(w xmlstream.TokenWriteFlusher, condition, text string) error {
	inner := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: condition}})
	if text != "" {
		inner = xmlstream.MultiReader(inner, xmlstream.Wrap(
			xmlstream.Token(xml.CharData(text)),
			xml.StartElement{Name: xml.Name{Local: "text"}},
		))
	}
	start := xml.StartElement{Name: xml.Name{Space: nsSASL, Local: "failure"}}
	if _, err := xmlstream.Copy(w, xmlstream.Wrap(inner, start)); err != nil {
		return err
	}
	return w.Flush()
}

// bindFeature binds a resource (RFC 6120 §7): the client's choice, or a
// random one, for the user that SASL authenticated.
func bindFeature(n *negotiation) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		List: func(ctx context.Context, e xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			return true, listElement(e, start)
		},
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			return n.bind(s)
		},
	}
}

type bindRequest struct {
	XMLName xml.Name `xml:"iq"`
	ID      string   `xml:"id,attr"`
	Type    string   `xml:"type,attr"`
	Bind    struct {
		Resource string `xml:"resource"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
}

func (n *negotiation) bind(s *xmpp.Session) (xmpp.SessionState, io.ReadWriter, error) {
	r := s.TokenReader()
	defer r.Close()
	w := s.TokenWriter()
	defer w.Close()
	d := xml.NewTokenDecoder(r)
	for {
		tok, err := d.Token()
		if err != nil {
			return 0, nil, err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		var req bindRequest
		if err := d.DecodeElement(&req, &start); err != nil {
			return 0, nil, err
		}
		if start.Name.Local != "iq" || req.Type != "set" || req.ID == "" {
			return 0, nil, streamError(stream.NotAuthorized, "bind a resource first")
		}
		reply := func(payload xml.TokenReader) error {
			iq := stanza.IQ{ID: req.ID, Type: stanza.ResultIQ}
			if payload != nil {
				if _, isErr := payload.(errorReader); isErr {
					iq.Type = stanza.ErrorIQ
				}
			}
			if _, err := xmlstream.Copy(w, iq.Wrap(payload)); err != nil {
				return err
			}
			return w.Flush()
		}
		resource := strings.TrimSpace(req.Bind.Resource)
		if resource == "" {
			resource = randomID()
		}
		full, err := jid.New(n.user, n.host, resource)
		if err != nil {
			if err := reply(errorReader{stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}.TokenReader()}); err != nil {
				return 0, nil, err
			}
			continue
		}
		sess := newSession(full, n.conn, n.guard, n.cfg, n.logger.with("jid", full.String()))
		if err := n.cfg.Router.Bind(sess); err != nil {
			se := stanza.Error{Type: stanza.Cancel, Condition: stanza.ResourceConstraint}
			errors.As(err, &se)
			if err := reply(errorReader{se.TokenReader()}); err != nil {
				return 0, nil, err
			}
			continue
		}
		n.sess = sess
		payload := xmlstream.Wrap(
			xmlstream.Wrap(xmlstream.Token(xml.CharData(full.String())), xml.StartElement{Name: xml.Name{Local: "jid"}}),
			xml.StartElement{Name: xml.Name{Space: nsBind, Local: "bind"}},
		)
		if err := reply(payload); err != nil {
			return 0, nil, err
		}
		return xmpp.Ready, nil, nil
	}
}

// errorReader marks a payload as an error for the bind reply.
type errorReader struct{ xml.TokenReader }

// remoteAddr is the client's IP address, or the zero Addr.
func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
