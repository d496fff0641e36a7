package c2s

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/internal/randid"
)

// XEP-0386 Bind2 (urn:xmpp:bind:0) inline in SASL2 (sasl2.go): the
// resource from the client's tag and user-agent, and the session features
// enabled in the same round trip.

// InlineFeature enables a session feature requested inside a Bind2
// <bind/> (Config.Bind2), right after the resource is bound and before
// the session reads anything. It returns what goes in <bound/> for it
// (nothing for most features); an error is logged and the feature left
// off, the login goes on. It runs on the negotiation's goroutine; s may
// be delivered to already.
type InlineFeature interface {
	EnableInline(ctx context.Context, s *Session, el Element) ([]byte, error)
}

// InlineFeatureFunc adapts a function to an InlineFeature.
type InlineFeatureFunc func(ctx context.Context, s *Session, el Element) ([]byte, error)

// EnableInline calls f.
func (f InlineFeatureFunc) EnableInline(ctx context.Context, s *Session, el Element) ([]byte, error) {
	return f(ctx, s, el)
}

// InlineElement adapts an ElementHandler (Config.Elements) to an
// InlineFeature that answers nothing in <bound/>, such as XEP-0352's
// <active/> and <inactive/>.
func InlineElement(h ElementHandler) InlineFeature { return inlineElement{h} }

type inlineElement struct{ h ElementHandler }

func (i inlineElement) EnableInline(ctx context.Context, s *Session, el Element) ([]byte, error) {
	return nil, i.h.HandleElement(ctx, s, el)
}

// inlineRequest is an element inside a Bind2 <bind/>, kept whole.
type inlineRequest struct {
	XMLName xml.Name
	Attr    []xml.Attr `xml:",any,attr"`
	Inner   []byte     `xml:",innerxml"`
}

// raw is the element as standalone XML, its namespace declared.
func (r inlineRequest) raw() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<%s xmlns='%s'", r.XMLName.Local, escapeAttr(r.XMLName.Space))
	for _, a := range r.Attr {
		if a.Name.Space != "" || a.Name.Local == "xmlns" {
			continue
		}
		fmt.Fprintf(&b, " %s='%s'", a.Name.Local, escapeAttr(a.Value))
	}
	b.WriteByte('>')
	b.Write(r.Inner)
	fmt.Fprintf(&b, "</%s>", r.XMLName.Local)
	return b.Bytes()
}

// bind2Request is a Bind2 <bind/>.
type bind2Request struct {
	Tag      string          `xml:"urn:xmpp:bind:0 tag"`
	Features []inlineRequest `xml:",any"`
}

// bind2 binds a resource inline (XEP-0386) and enables the inline
// features asked for; it returns the <bound/> element. The resource is
// the client's tag, if it prepares, a slash and an id that is the same
// for every login of one client (the user-agent id, hashed: never shown)
// or random without one; binding it again replaces the client's earlier
// session (XEP-0386 §2.2).
func (n *negotiation) bind2(req *bind2Request) ([]byte, error) {
	id := bind2ID(n.user, n.host, n.agent.ID)
	resource := id
	if req.Tag != "" {
		resource = req.Tag + "/" + id
	}
	sess, err := n.bindResource(n.ctx, resource)
	var se stanza.Error
	if err != nil && req.Tag != "" && errors.As(err, &se) && se.Condition == stanza.BadRequest {
		// A tag that does not prepare: the id alone.
		sess, err = n.bindResource(n.ctx, id)
	}
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "<bound xmlns='%s'>", nsBind2)
	for _, f := range req.Features {
		el := Element{Name: f.XMLName, Raw: f.raw()}
		if f.XMLName == (xml.Name{Space: nsSM, Local: "enable"}) {
			answer, err := sess.startSM(el.Raw, false)
			if err != nil {
				answer = failedElement("bad-request")
			}
			b.Write(answer)
			continue
		}
		h, ok := n.cfg.Bind2[f.XMLName]
		if !ok {
			n.logger.Debug("bind2: inline feature not offered", "name", f.XMLName.Local, "ns", f.XMLName.Space)
			continue
		}
		answer, err := h.EnableInline(n.ctx, sess, el)
		if err != nil {
			sess.logger.Info("bind2: inline feature failed", "name", f.XMLName.Local, "ns", f.XMLName.Space, "err", err)
			continue
		}
		b.Write(answer)
	}
	b.WriteString("</bound>")
	return b.Bytes(), nil
}

// bind2ID is the server's part of a Bind2 resource: for a client with a
// user-agent id, the same on every login of that client to that account,
// from a hash that does not show the id; without one, random.
func bind2ID(user, host, agent string) string {
	if agent == "" {
		return randid.New()
	}
	sum := sha256.Sum256([]byte("ottr bind2\x00" + user + "@" + host + "\x00" + agent))
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:8])
}
