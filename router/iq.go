package router

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sort"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

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
	Session Target
}

// IQHandler answers iq requests for one payload. It returns the result's
// payload (nil for an empty result) or an error: a stanza.Error (found
// with errors.As) is sent to the requester as it is, anything else as
// internal-server-error. HandleIQ runs on the requester's read
// goroutine; it must not block on other sessions.
type IQHandler interface {
	HandleIQ(ctx context.Context, req IQRequest) (xml.TokenReader, error)
}

// ErrAnswered is returned by an IQHandler that has queued its answer to
// the requester itself, such as an error with an application-specific
// condition (RFC 6120 §8.3.4) that a stanza.Error cannot carry: the core
// then sends nothing.
var ErrAnswered = errors.New("router: the iq handler answered itself")

// IQHandlerFunc adapts a function to IQHandler.
type IQHandlerFunc func(ctx context.Context, req IQRequest) (xml.TokenReader, error)

// HandleIQ calls f.
func (f IQHandlerFunc) HandleIQ(ctx context.Context, req IQRequest) (xml.TokenReader, error) {
	return f(ctx, req)
}

// Where an iq handler answers; or'ed together.
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
	accountFeatures       []string // disco#info features of every account
	// accountIdentities are the accounts' identities beyond
	// account/registered, as category and type.
	accountIdentities [][2]string
}

func newIQMux() iqMux {
	return iqMux{
		server:  make(map[xml.Name]IQHandler),
		self:    make(map[xml.Name]IQHandler),
		account: make(map[xml.Name]IQHandler),
	}
}

// HandleIQ registers h for requests whose payload is name, addressed
// where says (AtServer, AtSelf, AtAccount, or'ed), and adds feature (if
// not empty) to the server's disco#info features. A nil handler, a
// second handler for the same name and place, or a registration after
// the first session bound is an error.
func (r *Router) HandleIQ(name xml.Name, where int, feature string, h IQHandler) error {
	if h == nil {
		return fmt.Errorf("router: nil iq handler for {%s}%s", name.Space, name.Local)
	}
	if r.started.Load() {
		return fmt.Errorf("router: iq handler for {%s}%s after start", name.Space, name.Local)
	}
	for _, t := range []struct {
		bit   int
		table map[xml.Name]IQHandler
	}{{AtServer, r.iq.server}, {AtSelf, r.iq.self}, {AtAccount, r.iq.account}} {
		if where&t.bit != 0 && t.table[name] != nil {
			return fmt.Errorf("router: two iq handlers for {%s}%s", name.Space, name.Local)
		}
	}
	for _, t := range []struct {
		bit   int
		table map[xml.Name]IQHandler
	}{{AtServer, r.iq.server}, {AtSelf, r.iq.self}, {AtAccount, r.iq.account}} {
		if where&t.bit != 0 {
			t.table[name] = h
		}
	}
	if feature != "" {
		r.iq.features = append(r.iq.features, feature)
	}
	return nil
}

// Features returns the server's disco#info features, sorted.
func (r *Router) Features() []string {
	fs := append([]string(nil), r.iq.features...)
	sort.Strings(fs)
	return fs
}

// AddFeature adds f to the server's disco#info features, for a module
// that serves a feature without an iq handler of its own (XEP-0160's
// msgoffline). A registration after the first session bound is an
// error.
func (r *Router) AddFeature(f string) error {
	if r.started.Load() {
		return fmt.Errorf("router: feature %s after start", f)
	}
	r.iq.features = append(r.iq.features, f)
	return nil
}

// AddAccountFeature adds f to the disco#info features of every local
// account (XEP-0030 §3.1 on a bare JID: push, the archive), for a module
// whose feature is served for the account rather than by the server.
// A registration after the first session bound is an error.
func (r *Router) AddAccountFeature(f string) error {
	if r.started.Load() {
		return fmt.Errorf("router: account feature %s after start", f)
	}
	r.iq.accountFeatures = append(r.iq.accountFeatures, f)
	return nil
}

// AddAccountIdentity adds the identity category/typ to the disco#info of
// every local account, as XEP-0163 has a PEP service add pubsub/pep. A
// registration after the first session bound is an error.
func (r *Router) AddAccountIdentity(category, typ string) error {
	if r.started.Load() {
		return fmt.Errorf("router: account identity %s/%s after start", category, typ)
	}
	r.iq.accountIdentities = append(r.iq.accountIdentities, [2]string{category, typ})
	return nil
}

// AccountIdentities returns the identities added with
// AddAccountIdentity, each as category and type, in the order added.
func (r *Router) AccountIdentities() [][2]string {
	return append([][2]string(nil), r.iq.accountIdentities...)
}

// AccountFeatures returns the accounts' disco#info features added with
// AddAccountFeature, sorted.
func (r *Router) AccountFeatures() []string {
	fs := append([]string(nil), r.iq.accountFeatures...)
	sort.Strings(fs)
	return fs
}

// handleIQ answers a request addressed to the server or to an account
// with the handlers of table; responses addressed there are dropped.
func (r *Router) handleIQ(ctx context.Context, from Target, st *element.Stanza, table map[xml.Name]IQHandler) {
	if !st.IsIQRequest() {
		if len(r.hooks[IQResponse]) > 0 && (st.Type == "result" || st.Type == "error") {
			to := st.To
			if to.Equal(jid.JID{}) {
				to = from.JID().Bare()
			}
			r.Fire(IQResponse, &EventData{Ctx: ctx, From: from, Stanza: st, To: to})
		}
		return
	}
	payload, ok := st.Payload()
	if !ok {
		r.Bounce(from, st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	h := table[payload.Name]
	if h == nil {
		r.Bounce(from, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		return
	}
	to := st.To
	if to.Equal(jid.JID{}) {
		to = from.JID().Bare()
	}
	result, err := h.HandleIQ(ctx, IQRequest{From: from.JID(), To: to, Stanza: st, Payload: payload, Session: from})
	if errors.Is(err, ErrAnswered) {
		return
	}
	if err != nil {
		var se stanza.Error
		if !errors.As(err, &se) {
			r.logger.Error("iq handler failed", "ns", payload.Name.Space, "err", err)
			se = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
		}
		r.Bounce(from, st, se)
		return
	}
	reply := st.Reply(to, result)
	reply.To = from.JID()
	r.Deliver(from, reply)
}
