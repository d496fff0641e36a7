package server

import (
	"encoding/xml"
	"errors"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/router"
)

// The API for programs and tests that embed ottr and add iq handlers of
// their own; the types are the core's.

// IQRequest is one iq get or set for a handler (router.IQRequest).
type IQRequest = router.IQRequest

// IQHandler answers iq requests for one payload (router.IQHandler).
type IQHandler = router.IQHandler

// IQHandlerFunc adapts a function to IQHandler.
type IQHandlerFunc = router.IQHandlerFunc

// Where an iq handler answers (see HandleIQ); or'ed together.
const (
	AtServer  = router.AtServer
	AtSelf    = router.AtSelf
	AtAccount = router.AtAccount
)

// Version is reported by XEP-0092 (mod/version).
const Version = "0.1.0-dev"

// HandleIQ adds an iq handler for requests whose payload is {space}local,
// addressed where says (AtServer, AtSelf, AtAccount, or'ed), with feature
// listed in the server's disco#info when not empty. It must be called
// before Start.
func (s *Server) HandleIQ(space, local string, where int, feature string, h IQHandler) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) > 0 || s.closed {
		return errors.New("server: HandleIQ after Start")
	}
	return s.router.HandleIQ(xml.Name{Space: space, Local: local}, where, feature, h)
}

// Router returns the server's routing core (for tests and metrics).
func (s *Server) Router() *router.Router { return s.router }

// DirectedPresences returns how many entities the session bound to full
// remembers having sent directed presence to (for tests and metrics).
func (s *Server) DirectedPresences(full jid.JID) int {
	return s.mods.presence.DirectedPresences(full)
}
