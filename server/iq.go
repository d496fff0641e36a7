package server

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"ottr.im/ottr/c2s"
	"ottr.im/ottr/element"
)

// IQRequest is one iq get or set for a local handler.
type IQRequest struct {
	// From is the requester's full JID; To is the server or account the
	// request is addressed to.
	From, To jid.JID
	// Stanza is the whole request; Payload its first child.
	Stanza  *element.Stanza
	Payload xml.StartElement
	// Session is the requester's session.
	Session *c2s.Session
}

// IQHandler answers iq requests for one payload. It returns the result's
// payload (nil for an empty result) or an error: a stanza.Error is sent
// to the requester as it is, anything else as internal-server-error.
// HandleIQ runs on the requester's read goroutine; it must not block on
// other sessions.
type IQHandler interface {
	HandleIQ(ctx context.Context, req IQRequest) (xml.TokenReader, error)
}

// IQHandlerFunc adapts a function to IQHandler.
type IQHandlerFunc func(ctx context.Context, req IQRequest) (xml.TokenReader, error)

// HandleIQ calls f.
func (f IQHandlerFunc) HandleIQ(ctx context.Context, req IQRequest) (xml.TokenReader, error) {
	return f(ctx, req)
}

// Where an iq handler answers.
const (
	// AtServer answers requests to the domain (to="example.org").
	AtServer = 1 << iota
	// AtSelf answers requests to the requester's own account (no to, or
	// to its bare JID).
	AtSelf
	// AtAccount answers requests to another local account's bare JID.
	AtAccount
)

// iqMux holds the iq handlers, by payload name, for each address kind.
// It is filled at start-up and read-only afterwards.
type iqMux struct {
	server, self, account map[xml.Name]IQHandler
	features              []string // disco#info features of the server
}

func newIQMux() *iqMux {
	return &iqMux{
		server:  make(map[xml.Name]IQHandler),
		self:    make(map[xml.Name]IQHandler),
		account: make(map[xml.Name]IQHandler),
	}
}

// handle registers h for payload name at the address kinds in where, and
// adds feature (if not empty) to the server's disco#info. A nil handler
// or a second handler for the same name and place is an error.
func (m *iqMux) handle(name xml.Name, where int, feature string, h IQHandler) error {
	if h == nil {
		return errors.New("server: nil iq handler for " + name.Space)
	}
	for _, t := range []struct {
		bit   int
		table map[xml.Name]IQHandler
	}{{AtServer, m.server}, {AtSelf, m.self}, {AtAccount, m.account}} {
		if where&t.bit == 0 {
			continue
		}
		if t.table[name] != nil {
			return fmt.Errorf("server: two iq handlers for {%s}%s", name.Space, name.Local)
		}
		t.table[name] = h
	}
	if feature != "" {
		m.features = append(m.features, feature)
	}
	return nil
}

// emptyElement returns a token reader for <local xmlns=space/>.
func emptyElement(space, local string) xml.TokenReader {
	return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: space, Local: local}})
}
