package c2s

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/internal/randid"
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
		n.tlsConn = tls.Server(n.conn, cfg)
		n.guard = newGuard(streamConn(n.tlsConn), n.cfg.Guard)
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

// announced lists an informational feature after authentication; el
// gives its name and attributes.
func announced(el func() xml.StartElement) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       el().Name,
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		List: func(ctx context.Context, e xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			start.Attr = el().Attr
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
			n.offer = n.saslOffer(mechanismNames(n.cfg.Mechanisms))
			if err := e.EncodeToken(start); err != nil {
				return true, err
			}
			for _, m := range n.offer.Mechanisms {
				mech := xml.StartElement{Name: xml.Name{Local: "mechanism"}}
				if err := e.EncodeToken(mech); err != nil {
					return true, err
				}
				if err := e.EncodeToken(xml.CharData(m)); err != nil {
					return true, err
				}
				if err := e.EncodeToken(mech.End()); err != nil {
					return true, err
				}
			}
			if err := e.EncodeToken(start.End()); err != nil {
				return true, err
			}
			// XEP-0440, a stream feature of its own, listed here beside
			// the mechanisms it qualifies.
			return true, listChannelBindings(e, n.offer.ChannelBindings)
		},
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			return n.sasl(s)
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

// maxSASLSteps bounds the server steps of one SASL attempt: the
// challenges sent plus the final answer.
const maxSASLSteps = 10

// Names of the SASL elements.
var (
	saslAuth     = xml.Name{Space: nsSASL, Local: "auth"}
	saslResponse = xml.Name{Space: nsSASL, Local: "response"}
	saslAbort    = xml.Name{Space: nsSASL, Local: "abort"}
)

// sasl runs SASL attempts until one succeeds: each starts with an
// <auth/>, and a failed one is answered with <failure/>.
func (n *negotiation) sasl(s *xmpp.Session) (xmpp.SessionState, io.ReadWriter, error) {
	r := s.TokenReader()
	defer r.Close()
	w := s.TokenWriter()
	defer w.Close()
	d := xml.NewTokenDecoder(r)
	for attempt := 1; ; attempt++ {
		el, err := readSASL(d)
		if err != nil {
			return 0, nil, err
		}
		switch el.XMLName {
		case saslAbort:
			if err := writeSASLFailure(w, "aborted", ""); err != nil {
				return 0, nil, err
			}
			continue
		case saslAuth:
		default:
			return 0, nil, streamError(stream.NotAuthorized, "authenticate first")
		}
		if attempt > n.cfg.MaxAuthAttempts {
			n.logger.Info("too many SASL attempts", "attempts", attempt-1)
			writeSASLFailure(w, "not-authorized", "too many attempts")
			return 0, nil, streamError(stream.PolicyViolation, "too many authentication attempts")
		}
		mech, ok := n.mechanism(el.Mechanism)
		if !ok {
			n.logger.Info("sasl failed", "mechanism", el.Mechanism, "reason", "unknown mechanism")
			if err := writeSASLFailure(w, "invalid-mechanism", ""); err != nil {
				return 0, nil, err
			}
			continue
		}
		final, cond, err := n.exchange(mech, el.Payload, func(b64 string) (string, string, error) {
			return n.challenge(w, d, b64)
		})
		if err != nil {
			return 0, nil, err
		}
		if cond != "" {
			if err := writeSASLFailure(w, cond, n.failureText()); err != nil {
				return 0, nil, err
			}
			continue
		}
		// The client's next bytes open a new stream.
		n.guard.restart()
		if err := writeSASL(w, "success", encodeSASL(final)); err != nil {
			return 0, nil, err
		}
		n.restarts++
		n.logger.Info("authenticated", "mechanism", mech.Name, "user", n.user+"@"+n.host)
		return xmpp.Authn, n.guard, nil
	}
}

// exchange runs one SASL attempt with mech, from the payload of the
// <auth/> to its outcome: the mechanism steps, each challenge it makes is
// sent and the client's <response/> read, until it is done, fails, or
// took maxSASLSteps steps. It returns the mechanism's final data (for
// <success/>) and "" on success, or the SASL failure condition. An error
// ends the stream. challenge sends one challenge (base64, "=" for an
// empty one) and returns the client's answer, or a failure condition: the
// profile's framing (RFC 6120 here, XEP-0388 for SASL2).
func (n *negotiation) exchange(mech sasl.Mechanism, payload string, challenge func(b64 string) (payload, cond string, err error)) (final []byte, cond string, err error) {
	n.authErr = nil
	defer func() {
		if err == nil {
			n.cfg.observeLogin(mech.Name, cond)
		}
	}()
	var user string
	permissions := func(neg *sasl.Negotiator) bool {
		username, secret, authzid := neg.Credentials()
		err := n.cfg.Auth.Authenticate(n.ctx, Credentials{
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
	var server saslServer = sasl.NewServer(mech, permissions)
	if sc := n.scram(mech.Name, &user); sc != nil {
		server = sc
	}
	if strings.TrimSpace(payload) == "" {
		// No initial response: send an empty challenge and take the
		// payload from the <response/> (RFC 6120 §6.4.2).
		if payload, cond, err = challenge("="); cond != "" || err != nil {
			return nil, cond, err
		}
	}
	for step := 1; ; step++ {
		msg, err := decodeSASL(payload)
		if err != nil {
			n.logger.Info("sasl failed", "mechanism", mech.Name, "reason", "incorrect encoding")
			return nil, "incorrect-encoding", nil
		}
		more, resp, err := server.Step(msg)
		switch {
		case err != nil:
			return nil, n.stepFailed(mech, err), nil
		case !more && user != "":
			n.user = user
			return resp, "", nil
		case !more:
			n.logger.Info("sasl failed", "mechanism", mech.Name, "reason", "done without credentials")
			return nil, "malformed-request", nil
		case step >= maxSASLSteps:
			n.logger.Info("sasl failed", "mechanism", mech.Name, "reason", "too many steps", "steps", step)
			return nil, "malformed-request", nil
		}
		if payload, cond, err = challenge(encodeSASL(resp)); cond != "" || err != nil {
			return nil, cond, err
		}
	}
}

// challenge sends a <challenge/> with the base64 text b64 and reads the
// client's answer: the payload of its <response/>, or the condition
// "aborted" for an <abort/>. Anything else ends the stream.
func (n *negotiation) challenge(w xmlstream.TokenWriteFlusher, d *xml.Decoder, b64 string) (payload, cond string, err error) {
	if err := writeSASL(w, "challenge", b64); err != nil {
		return "", "", err
	}
	resp, err := readSASL(d)
	if err != nil {
		return "", "", err
	}
	switch resp.XMLName {
	case saslResponse:
		return resp.Payload, "", nil
	case saslAbort:
		n.logger.Debug("sasl aborted by the client")
		return "", "aborted", nil
	}
	return "", "", streamError(stream.NotAuthorized, "authenticate first")
}

// stepFailed logs a failed mechanism step and returns its SASL failure
// condition: malformed-request for a payload the mechanism refused, else
// the Authenticator's (not-authorized by default).
func (n *negotiation) stepFailed(mech sasl.Mechanism, err error) string {
	if errors.Is(err, sasl.ErrInvalidChallenge) {
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

// mechanism returns the mechanism of Config.Mechanisms named name, if
// the stream offered it.
func (n *negotiation) mechanism(name string) (sasl.Mechanism, bool) {
	if !slices.Contains(n.offer.Mechanisms, name) {
		return sasl.Mechanism{}, false
	}
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

// encodeSASL is the base64 text of a SASL message: empty for none.
func encodeSASL(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
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
	return authnFeature(xml.Name{Space: nsBind, Local: "bind"}, true, n.bind)
}

// authnFeature is a feature negotiated once the client authenticated and
// before it is bound, listed as an empty element, required or not.
func authnFeature(name xml.Name, required bool, negotiate func(*xmpp.Session) (xmpp.SessionState, io.ReadWriter, error)) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       name,
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		List: func(ctx context.Context, e xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			return required, listElement(e, start)
		},
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return required, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			return negotiate(s)
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
		sess, err := n.bindResource(n.ctx, req.Bind.Resource)
		if err != nil {
			se := stanza.Error{Type: stanza.Cancel, Condition: stanza.ResourceConstraint}
			errors.As(err, &se)
			if err := reply(errorReader{se.TokenReader()}); err != nil {
				return 0, nil, err
			}
			continue
		}
		payload := xmlstream.Wrap(
			xmlstream.Wrap(xmlstream.Token(xml.CharData(sess.JID().String())), xml.StartElement{Name: xml.Name{Local: "jid"}}),
			xml.StartElement{Name: xml.Name{Space: nsBind, Local: "bind"}},
		)
		if err := reply(payload); err != nil {
			return 0, nil, err
		}
		return xmpp.Ready, nil, nil
	}
}

// bindResource binds a resource for the authenticated user: requested
// (prepared) or, when empty, a random one. It makes the session, hands it
// to the Router (with ctx) and records it as the negotiation's. It writes
// nothing: the RFC 6120 <bind/> exchange calls it, and SASL2 with Bind2
// can call it inline. A failure is or wraps a stanza.Error when it has a
// condition for the client: bad-request for a resource that does not
// prepare, or the Router's refusal.
func (n *negotiation) bindResource(ctx context.Context, requested string) (*Session, error) {
	resource := strings.TrimSpace(requested)
	if resource == "" {
		resource = randid.New()
	}
	full, err := jid.New(n.user, n.host, resource)
	if err != nil {
		return nil, fmt.Errorf("c2s: resource %q: %w: %w", resource, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}, err)
	}
	sess := newSession(n.base, full, n.cfg, n.logger.with("jid", full.String()))
	sess.client = clientName(n.agent.Software, n.agent.Device)
	if err := n.cfg.Router.Bind(ctx, sess); err != nil {
		sess.cancel()
		return nil, fmt.Errorf("c2s: bind %s refused: %w", full, err)
	}
	n.sess = sess
	return sess, nil
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

// nsSASLCB is XEP-0440's namespace.
const nsSASLCB = "urn:xmpp:sasl-cb:0"

// saslServer is the server side of one SASL exchange: mellium's
// sasl.Negotiator for the PLAIN-framed mechanisms, scramExchange for
// SCRAM. Step has sasl.Negotiator.Step's contract.
type saslServer interface {
	Step(msg []byte) (more bool, resp []byte, err error)
}

// mechanismNames returns the names of mechs.
func mechanismNames(mechs []sasl.Mechanism) []string {
	names := make([]string, len(mechs))
	for i, m := range mechs {
		names[i] = m.Name
	}
	return names
}

// saslOffer returns what this stream offers of the mechanisms names (in
// their order) and the channel-binding types: the SCRAM mechanisms only
// when the Authenticator serves them, the -PLUS ones only with a channel
// binding (TLS here, see channelBindings). RFC 6120 SASL lists it, and
// SASL2 (XEP-0388) should list its own from its mechanisms the same way;
// the feature in use keeps its offer in n.offer.
func (n *negotiation) saslOffer(names []string) auth.Offer {
	cbs := n.channelBindings()
	_, scram := n.cfg.Auth.(SCRAMAuthenticator)
	o := auth.Offer{ChannelBindings: cbs, Mechanisms: make([]string, 0, len(names))}
	for _, name := range names {
		if _, isSCRAM := auth.SCRAMHash(name); isSCRAM && (!scram || (auth.IsPlus(name) && len(cbs) == 0)) {
			continue
		}
		o.Mechanisms = append(o.Mechanisms, name)
	}
	return o
}

// channelBindings returns the channel-binding types this connection
// offers (XEP-0440): tls-exporter over TLS 1.3, tls-server-end-point
// when the server's certificate is known; none without TLS here (a web
// transport behind a proxy included).
func (n *negotiation) channelBindings() []string {
	if n.tlsConn == nil {
		return nil
	}
	cs := n.tlsConn.ConnectionState()
	var der []byte
	if cert, err := serverCertificate(n.cfg.TLS, cs.ServerName); err == nil && cert != nil && len(cert.Certificate) > 0 {
		der = cert.Certificate[0] // hashed only when a client binds to it (endpoint)
	}
	return auth.ChannelBindings(&cs, der)
}

// listChannelBindings writes XEP-0440's <sasl-channel-binding/> with
// types, nothing for none.
func listChannelBindings(e xmlstream.TokenWriter, types []string) error {
	if len(types) == 0 {
		return nil
	}
	start := xml.StartElement{Name: xml.Name{Space: nsSASLCB, Local: "sasl-channel-binding"}}
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	for _, t := range types {
		cb := xml.StartElement{Name: xml.Name{Local: "channel-binding"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: t}}}
		if err := e.EncodeToken(cb); err != nil {
			return err
		}
		if err := e.EncodeToken(cb.End()); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// scram returns the server side of a SCRAM exchange of mechanism on this
// connection, checked against n.offer (which the SASL feature in use set),
// or nil when mechanism is not SCRAM. On success it sets *user to the
// authenticated username; a failure is kept in n.authErr for its
// condition and text. RFC 6120 SASL and SASL2 both get it through
// exchange.
func (n *negotiation) scram(mechanism string, user *string) saslServer {
	sa, ok := n.cfg.Auth.(SCRAMAuthenticator)
	if _, isSCRAM := auth.SCRAMHash(mechanism); !isSCRAM || !ok {
		return nil
	}
	x := &scramExchange{n: n, sa: sa, user: user}
	x.creds = Credentials{Mechanism: mechanism, Host: n.host, Remote: remoteAddr(n.conn)}
	cfg := auth.SCRAMConfig{
		Mechanism: mechanism,
		Offer:     n.offer,
		Lookup: func(username, authzid string) (auth.SCRAMCredentials, error) {
			x.creds.Username, x.creds.Authzid = username, authzid
			c, err := sa.SCRAMCredentials(n.ctx, x.creds)
			x.looked = err == nil
			return c, err
		},
	}
	if n.tlsConn != nil {
		cfg.ChannelBinding = func(typ string) ([]byte, error) {
			if typ == auth.CBTLSServerEndPoint {
				return n.endpoint(), nil
			}
			cs := n.tlsConn.ConnectionState()
			return auth.ChannelBindingData(typ, &cs, nil)
		}
	}
	server, err := auth.NewSCRAMServer(cfg)
	if err != nil {
		return nil
	}
	x.server = server
	return x
}

// scramExchange runs auth.SCRAMServer for c2s: it reports the outcome to
// the SCRAMAuthenticator, records the user, and keeps a failure in
// n.authErr.
type scramExchange struct {
	n      *negotiation
	sa     SCRAMAuthenticator
	server *auth.SCRAMServer
	creds  Credentials
	looked bool // the credentials were looked up: the outcome counts
	user   *string
}

// Step implements saslServer.
func (x *scramExchange) Step(msg []byte) (bool, []byte, error) {
	more, resp, err := x.server.Step(msg)
	if !more && x.looked {
		err = x.sa.SCRAMDone(x.n.ctx, x.creds, err)
	}
	if err != nil {
		x.n.authErr = err
		return false, nil, err
	}
	if !more {
		*x.user = x.server.Username()
	}
	return more, resp, nil
}

// failureText is the text of the last SASL failure for the client, when
// its error has one (SASLText).
func (n *negotiation) failureText() string {
	var t interface{ SASLText() string }
	if errors.As(n.authErr, &t) {
		return t.SASLText()
	}
	return ""
}

// headerConn sends the stream header that mellium writes on its own
// together with the stream features written right after it: one write
// (one TLS record, one syscall) instead of two at each stream start. A
// held header goes out with whatever is written next, or at Close;
// nothing is held once the stream is bound (no header is written then).
// streamConn picks the kind for a connection.
type headerConn struct {
	net.Conn
	held []byte
}

// tlsHeaderConn is a headerConn over TLS: it keeps the *tls.Conn's
// methods, such as the ConnectionState that the guard and mellium look
// for.
type tlsHeaderConn struct {
	*tls.Conn
	h headerConn
}

// streamConn returns c with the stream header held for the features:
// the connection the guard reads and writes.
func streamConn(c net.Conn) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		return &tlsHeaderConn{Conn: tc, h: headerConn{Conn: tc}}
	}
	return &headerConn{Conn: c}
}

// Write holds a stream header (what starts with an XML declaration and
// opens the stream) and writes it before the next bytes.
func (c *headerConn) Write(p []byte) (int, error) {
	if len(c.held) == 0 && bytes.HasPrefix(p, []byte("<?xml")) && bytes.Contains(p, []byte("<stream:stream")) {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	if len(c.held) > 0 {
		buf := append(c.held, p...)
		c.held = c.held[:0]
		if _, err := c.Conn.Write(buf); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// Close writes a held header first.
func (c *headerConn) Close() error {
	if len(c.held) > 0 {
		c.Conn.Write(c.held)
		c.held = nil
	}
	return c.Conn.Close()
}

// Write is headerConn's.
func (c *tlsHeaderConn) Write(p []byte) (int, error) { return c.h.Write(p) }

// Close is headerConn's.
func (c *tlsHeaderConn) Close() error { return c.h.Close() }
