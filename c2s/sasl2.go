package c2s

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/stream"
)

// XEP-0388 SASL2 (urn:xmpp:sasl:2), with XEP-0386 Bind2 and XEP-0484 FAST
// inline.
//
// SASL2 runs every mechanism of Config.Mechanisms through the same steps
// as RFC 6120 SASL (negotiation.exchange), framed as <authenticate/>,
// <challenge/>, <response/>, <success/> and <failure/>; the FAST
// mechanisms (HT-SHA-256-NONE, and HT-SHA-256-ENDP on a TLS connection)
// are single-step and checked by Config.Fast. <continue/> is never sent.
// On success no stream restart follows: the client gets <success/> and
// either, with a Bind2 <bind/>, a bound session (the stream is ready), or
// new stream features (bind, stream management) on the same stream.
//
// Inside <authenticate/> the server takes:
//   - <user-agent id=''/> (software, device): the client's identity for
//     FAST tokens and Bind2's resource;
//   - <bind xmlns='urn:xmpp:bind:0'/> with an optional <tag/> and inline
//     features: XEP-0198 <enable/>, and those of Config.Bind2 (carbons,
//     client state); the answers go in <bound/> inside <success/>;
//   - <resume xmlns='urn:xmpp:sm:3'/>: XEP-0198 resumption inline; done
//     first, and when it works <bind/> is ignored;
//   - <request-token xmlns='urn:xmpp:fast:0' mechanism=''/> and <fast
//     count='' invalidate=''/>.

// Namespaces of SASL2 and what it carries inline.
const (
	nsSASL2 = "urn:xmpp:sasl:2"
	nsBind2 = "urn:xmpp:bind:0"
	nsFAST  = "urn:xmpp:fast:0"
)

// Limits of what a client names inside <authenticate/>.
const (
	maxAgentID   = 256 // a user-agent id (a UUID is 36)
	maxAgentText = 256 // its software and device, kept for the logs
	maxBind2Tag  = 64  // a Bind2 tag, the resource's prefix
)

// userAgent is the SASL2 <user-agent/>.
type userAgent struct {
	ID       string `xml:"id,attr"`
	Software string `xml:"urn:xmpp:sasl:2 software"`
	Device   string `xml:"urn:xmpp:sasl:2 device"`
}

// authenticateRequest is SASL2's <authenticate/>.
type authenticateRequest struct {
	XMLName         xml.Name
	Mechanism       string         `xml:"mechanism,attr"`
	InitialResponse *string        `xml:"urn:xmpp:sasl:2 initial-response"`
	UserAgent       *userAgent     `xml:"urn:xmpp:sasl:2 user-agent"`
	Bind            *bind2Request  `xml:"urn:xmpp:bind:0 bind"`
	Resume          *resumeRequest `xml:"urn:xmpp:sm:3 resume"`
	RequestToken    *struct {
		Mechanism string `xml:"mechanism,attr"`
	} `xml:"urn:xmpp:fast:0 request-token"`
	Fast *fastRequest `xml:"urn:xmpp:fast:0 fast"`
	// Payload is the chardata of a <response/> or <abort/> read in its
	// place.
	Payload string `xml:",chardata"`
}

// Names of the SASL2 elements a client sends.
var (
	sasl2Authenticate = xml.Name{Space: nsSASL2, Local: "authenticate"}
	sasl2Response     = xml.Name{Space: nsSASL2, Local: "response"}
	sasl2Abort        = xml.Name{Space: nsSASL2, Local: "abort"}
)

// readSASL2 reads the next element of a SASL2 exchange, skipping
// whitespace, and checks what it holds (checkAuthenticate).
func readSASL2(d *xml.Decoder) (authenticateRequest, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return authenticateRequest{}, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			continue
		case xml.StartElement:
			var req authenticateRequest
			if err := d.DecodeElement(&req, &t); err != nil {
				return authenticateRequest{}, err
			}
			return req, checkAuthenticate(&req)
		default:
			return authenticateRequest{}, streamError(stream.RestrictedXML, "")
		}
	}
}

// checkAuthenticate bounds what a client named: a payload within
// maxSASLPayload, a user-agent id of at most maxAgentID bytes (its
// software and device are cut to maxAgentText), a Bind2 tag of at most
// maxBind2Tag. Past them the stream ends with policy-violation.
func checkAuthenticate(req *authenticateRequest) error {
	if len(req.Payload) > maxSASLPayload || (req.InitialResponse != nil && len(*req.InitialResponse) > maxSASLPayload) {
		return streamError(stream.PolicyViolation, "SASL payload too large")
	}
	if ua := req.UserAgent; ua != nil {
		if len(ua.ID) > maxAgentID {
			return streamError(stream.PolicyViolation, "user-agent id too long")
		}
		ua.Software = truncate(strings.TrimSpace(ua.Software), maxAgentText)
		ua.Device = truncate(strings.TrimSpace(ua.Device), maxAgentText)
	}
	if req.Bind != nil {
		req.Bind.Tag = strings.TrimSpace(req.Bind.Tag)
		if len(req.Bind.Tag) > maxBind2Tag {
			return streamError(stream.PolicyViolation, "bind tag too long")
		}
	}
	return nil
}

// truncate cuts s to at most n bytes, dropping a rune cut in two.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// sasl2Feature offers SASL2 where RFC 6120 SASL is offered, with the same
// mechanisms, the FAST ones when Config.Fast is set, and Bind2, FAST and
// stream management inline.
func sasl2Feature(n *negotiation) xmpp.StreamFeature {
	var necessary xmpp.SessionState
	if n.cfg.RequireTLS {
		necessary = xmpp.Secure
	}
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsSASL2, Local: "authentication"},
		Necessary:  necessary,
		Prohibited: xmpp.Authn,
		List: func(ctx context.Context, e xmlstream.TokenWriter, start xml.StartElement) (bool, error) {
			_, err := xmlstream.Copy(e, xmlstream.Wrap(n.sasl2Listing(), start))
			return true, err
		},
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			return n.sasl2(s)
		},
	}
}

// sasl2Listing is the inside of <authentication/>: the mechanisms, and
// inline Bind2 (with its inline features), stream management and FAST.
func (n *negotiation) sasl2Listing() xml.TokenReader {
	// The offer of RFC 6120 SASL (SCRAM -PLUS only with a channel
	// binding), which exchange checks the mechanism against.
	n.offer = n.saslOffer(mechanismNames(n.cfg.Mechanisms))
	var parts []xml.TokenReader
	for _, m := range n.offer.Mechanisms {
		parts = append(parts, textElement("mechanism", m))
	}
	vars := []string{nsSM}
	for name := range n.cfg.Bind2 {
		if !slices.Contains(vars, name.Space) {
			vars = append(vars, name.Space)
		}
	}
	slices.Sort(vars)
	var features []xml.TokenReader
	for _, v := range vars {
		features = append(features, xmlstream.Wrap(nil, xml.StartElement{
			Name: xml.Name{Local: "feature"}, Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: v}},
		}))
	}
	inline := []xml.TokenReader{
		xmlstream.Wrap(
			xmlstream.Wrap(xmlstream.MultiReader(features...), xml.StartElement{Name: xml.Name{Local: "inline"}}),
			xml.StartElement{Name: xml.Name{Space: nsBind2, Local: "bind"}}),
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: nsSM, Local: "sm"}}),
	}
	if fast := n.fastMechanisms(); len(fast) > 0 {
		var mechs []xml.TokenReader
		for _, m := range fast {
			mechs = append(mechs, textElement("mechanism", m))
		}
		inline = append(inline, xmlstream.Wrap(xmlstream.MultiReader(mechs...), xml.StartElement{Name: xml.Name{Space: nsFAST, Local: "fast"}}))
	}
	parts = append(parts, xmlstream.Wrap(xmlstream.MultiReader(inline...), xml.StartElement{Name: xml.Name{Local: "inline"}}))
	return xmlstream.MultiReader(parts...)
}

// textElement is <local>text</local>, in the namespace around it.
func textElement(local, text string) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Local: local}})
}

// escapeText escapes s for character data.
func escapeText(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// escapeAttr escapes s for an attribute value in single or double quotes.
func escapeAttr(s string) string { return escapeText(s) }

// sasl2 runs SASL2 attempts until one succeeds, each an <authenticate/>;
// a failed one is answered with <failure/> and the client may try again,
// up to MaxAuthAttempts. On success it returns Authn (the client gets new
// features, no restart), Authn|Ready when Bind2 bound a resource, or
// errResumed when XEP-0198 resumption inline took over a session.
func (n *negotiation) sasl2(xs *xmpp.Session) (xmpp.SessionState, io.ReadWriter, error) {
	r := xs.TokenReader()
	defer r.Close()
	d := xml.NewTokenDecoder(r)
	for attempt := 1; ; attempt++ {
		req, err := readSASL2(d)
		if err != nil {
			return 0, nil, err
		}
		switch req.XMLName {
		case sasl2Abort:
			if err := n.sasl2Failure("aborted", ""); err != nil {
				return 0, nil, err
			}
			continue
		case sasl2Authenticate:
		default:
			return 0, nil, streamError(stream.NotAuthorized, "authenticate first")
		}
		if attempt > n.cfg.MaxAuthAttempts {
			n.logger.Info("too many SASL attempts", "attempts", attempt-1)
			n.sasl2Failure("not-authorized", "too many attempts")
			return 0, nil, streamError(stream.PolicyViolation, "too many authentication attempts")
		}
		n.agent = userAgent{} // each attempt names its client
		if ua := req.UserAgent; ua != nil {
			n.agent = *ua
		}
		final, cond, err := n.authenticate2(d, &req)
		if err != nil {
			return 0, nil, err
		}
		if cond != "" {
			if err := n.sasl2Failure(cond, ""); err != nil {
				return 0, nil, err
			}
			continue
		}
		n.logger.Info("authenticated", "mechanism", req.Mechanism, "user", n.user+"@"+n.host, "sasl2", true,
			"software", n.agent.Software, "device", n.agent.Device)
		state, rw, err, again := n.sasl2Success(&req, final)
		if again {
			continue
		}
		return state, rw, err
	}
}

// authenticate2 runs one SASL2 attempt: a FAST mechanism in one step, any
// other through exchange with SASL2's framing.
func (n *negotiation) authenticate2(d *xml.Decoder, req *authenticateRequest) (final []byte, cond string, err error) {
	payload := ""
	if req.InitialResponse != nil {
		payload = strings.TrimSpace(*req.InitialResponse)
		if payload == "" {
			payload = "=" // present and empty: an empty initial response
		}
	}
	if slices.Contains(n.fastMechanisms(), req.Mechanism) {
		return n.fastLogin(req, payload)
	}
	mech, ok := n.mechanism(req.Mechanism)
	if !ok {
		n.logger.Info("sasl failed", "mechanism", req.Mechanism, "reason", "unknown mechanism")
		return nil, "invalid-mechanism", nil
	}
	if req.InitialResponse == nil {
		payload = ""
	}
	return n.exchange(mech, payload, func(b64 string) (string, string, error) {
		return n.challenge2(d, b64)
	})
}

// challenge2 sends a SASL2 <challenge/> and reads the client's answer, as
// challenge does for RFC 6120 SASL.
func (n *negotiation) challenge2(d *xml.Decoder, b64 string) (payload, cond string, err error) {
	if b64 == "=" {
		b64 = ""
	}
	if _, err := fmt.Fprintf(n.guard, "<challenge xmlns='%s'>%s</challenge>", nsSASL2, b64); err != nil {
		return "", "", err
	}
	resp, err := readSASL2(d)
	if err != nil {
		return "", "", err
	}
	switch resp.XMLName {
	case sasl2Response:
		p := strings.TrimSpace(resp.Payload)
		if p == "" {
			p = "="
		}
		return p, "", nil
	case sasl2Abort:
		n.logger.Debug("sasl aborted by the client")
		return "", "aborted", nil
	}
	return "", "", streamError(stream.NotAuthorized, "authenticate first")
}

// sasl2Failure answers a failed attempt: the RFC 6120 condition, and a
// text when there is one.
func (n *negotiation) sasl2Failure(condition, text string) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<failure xmlns='%s'><%s xmlns='%s'/>", nsSASL2, condition, nsSASL)
	if text != "" {
		fmt.Fprintf(&b, "<text>%s</text>", escapeText(text))
	}
	b.WriteString("</failure>")
	_, err := n.guard.Write(b.Bytes())
	return err
}

// sasl2Success finishes a successful SASL2 attempt: inline resumption,
// else Bind2, then FAST tokens, all answered in one <success/>; stream
// features follow it when the session is not bound yet. again reports a
// Bind2 that failed: the attempt was answered with <failure/> and the
// client may try again.
func (n *negotiation) sasl2Success(req *authenticateRequest, final []byte) (_ xmpp.SessionState, _ io.ReadWriter, _ error, again bool) {
	var inner bytes.Buffer // <success/>'s children after the identifier
	self := n.user + "@" + n.host
	identifier := self
	state := xmpp.Authn
	var ended error // errResumed, or nil
	if req.Resume != nil {
		failed, err := n.tryResume(*req.Resume)
		switch {
		case errors.Is(err, errResumed):
			identifier = n.sess.jid.String()
			fmt.Fprintf(&inner, "<resumed xmlns='%s' h='%d' previd='%s'/>", nsSM, n.sess.sm.inH, escapeAttr(n.previd))
			n.sasl2Resumed = true
			ended = err
		case err != nil:
			return 0, nil, err, false
		default:
			inner.Write(failed)
		}
	}
	if ended == nil && req.Bind != nil {
		bound, err := n.bind2(req.Bind)
		if err != nil {
			// Authenticated, but no session: the attempt fails, and the
			// client may try again.
			n.logger.Info("bind2 failed", "err", err)
			n.user = ""
			return 0, nil, n.sasl2Failure("temporary-auth-failure", "binding a resource failed"), true
		}
		identifier = n.sess.jid.String()
		inner.Write(bound)
		state |= xmpp.Ready
	}
	inner.Write(n.fastToken(req))
	var b bytes.Buffer
	fmt.Fprintf(&b, "<success xmlns='%s'>", nsSASL2)
	if len(final) > 0 {
		fmt.Fprintf(&b, "<additional-data>%s</additional-data>", encodeSASL(final))
	}
	fmt.Fprintf(&b, "<authorization-identifier>%s</authorization-identifier>", escapeText(identifier))
	b.Write(inner.Bytes())
	b.WriteString("</success>")
	if state&xmpp.Ready != 0 {
		// XEP-0388 §2.6.1: features follow <success/>; once bound, none
		// is left to negotiate.
		b.WriteString("<stream:features/>")
	}
	if _, err := n.guard.Write(b.Bytes()); err != nil {
		return 0, nil, err, false
	}
	if ended != nil {
		return 0, n.guard, ended, false
	}
	return state, nil, nil, false
}
