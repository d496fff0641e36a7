// Package push is XEP-0357, push notifications: a client enables push
// with its app server's JID, a node and optional publish-options, and
// while none of its user's sessions can take a message (every one gone,
// or waiting for stream-management resumption) the server publishes a
// summary of each arriving message with a body to every registration:
// an iq set to the app server with the urn:xmpp:push:summary form
// (message-count, last-message-sender; last-message-body only when the
// client's publish-options hold include-body = true), and the client's
// publish-options. An error from the app server other than a wait
// disables that registration (XEP-0357 §8 leaves it to the server;
// Prosody's mod_cloud_notify does the same).
//
// Iq handlers: <enable/> and <disable/> (urn:xmpp:push:0) sets on the
// user's own account; the account's disco#info lists urn:xmpp:push:0.
//
// Hooks:
//   - MessageOffline (10, above offline's 0; never stops): the user has
//     no available resource; if every bound session of the user waits
//     for resumption (or there is none), publish.
//   - MessageDelivered (0): the message was queued to a session that
//     waits for resumption (a Target implementing Waiting); if every
//     session of the user does, publish.
//   - SessionBound (0): the user is back: the message count starts again.
//
// Publishes are rate-limited per user (one per Options.Interval; the
// messages between are counted in the next one), and the per-user
// counts held in memory are bounded (Options.MaxUsers).
//
// Store: PushRegistrations, EnablePush, DisablePush.
package push

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/internal/randid"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// Namespaces.
const (
	NS             = "urn:xmpp:push:0"
	nsPubSub       = "http://jabber.org/protocol/pubsub"
	nsData         = "jabber:x:data"
	summaryForm    = "urn:xmpp:push:summary"
	publishOptions = "http://jabber.org/protocol/pubsub#publish-options"
	// IncludeBody is the publish-options field a client sets to true (or
	// 1) to have the message's body in its notifications.
	IncludeBody = "include-body"
)

// Store holds the users' push registrations.
type Store interface {
	// PushRegistrations returns the user's push registrations, in the
	// order they were made.
	PushRegistrations(ctx context.Context, host, user string) ([]storage.PushRegistration, error)
	// EnablePush stores a push registration for the user, replacing the
	// options of one with the same service and node. A new one that would
	// take the user past max registrations stores nothing and returns an
	// error wrapping storage.ErrQuota.
	EnablePush(ctx context.Context, host, user string, reg storage.PushRegistration, max int) error
	// DisablePush removes the user's registrations with service, only the
	// one with node when node is not empty, and returns how many it
	// removed.
	DisablePush(ctx context.Context, host, user, service, node string) (int, error)
}

// Waiting is implemented by a session that waits for stream-management
// resumption (XEP-0198): it is bound but has no connection.
type Waiting interface {
	// Waiting reports whether the session has no connection now.
	Waiting() bool
}

// The defaults of Options' zero values (config's defaults too).
const (
	DefaultMaxRegistrations = 8
	DefaultInterval         = 5 * time.Second
	DefaultMaxUsers         = 10000
)

// MaxRegistrationBytes bounds one registration's node and publish-options
// together, as stored and sent with every publish: a real one (a node id
// and an app secret) takes a few hundred bytes.
const MaxRegistrationBytes = 4 << 10

// Options are the module's limits.
type Options struct {
	// MaxRegistrations bounds one user's registrations; 0 is
	// DefaultMaxRegistrations.
	MaxRegistrations int
	// Interval is the least time between two publishes for one user; 0
	// is DefaultInterval.
	Interval time.Duration
	// MaxUsers bounds the users whose message counts are held; past it
	// an arbitrary one is forgotten (its next count starts again). 0 is
	// DefaultMaxUsers.
	MaxUsers int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Module is the push module.
type Module struct {
	core   *router.Router
	store  Store
	opts   Options
	logger *slog.Logger

	mu    sync.Mutex
	users map[string]*pending // bare JID -> messages since the user left
}

// pending is what one user missed since their last session.
type pending struct {
	count     int
	last      time.Time       // last publish
	delivered *element.Stanza // the message last counted, for MessageDelivered's copies
}

// Register adds the module to core.
func Register(core *router.Router, store Store, opts Options) (*Module, error) {
	defaults.Positive(&opts.MaxRegistrations, DefaultMaxRegistrations)
	defaults.Positive(&opts.Interval, DefaultInterval)
	defaults.Positive(&opts.MaxUsers, DefaultMaxUsers)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Module{core: core, store: store, opts: opts, logger: core.Logger().With("module", "push"), users: make(map[string]*pending)}
	for local, h := range map[string]router.IQHandlerFunc{"enable": m.enable, "disable": m.disable} {
		if err := core.HandleIQ(xml.Name{Space: NS, Local: local}, router.AtSelf, "", h); err != nil {
			return nil, err
		}
	}
	if err := core.AddAccountFeature(NS); err != nil {
		return nil, err
	}
	return m, core.Hooks("push",
		router.HookSpec{Event: router.MessageOffline, Priority: 10, Fn: m.messageOffline},
		router.HookSpec{Event: router.MessageDelivered, Priority: 0, Fn: m.messageDelivered},
		router.HookSpec{Event: router.SessionBound, Priority: 0, Fn: m.sessionBound},
	)
}

// field is one data form field.
type field struct {
	Var    string   `xml:"var,attr"`
	Type   string   `xml:"type,attr,omitempty"`
	Values []string `xml:"value"`
}

// form is a data form (XEP-0004).
type form struct {
	XMLName xml.Name `xml:"jabber:x:data x"`
	Type    string   `xml:"type,attr"`
	Fields  []field  `xml:"field"`
}

// command is an <enable/> or <disable/>.
type command struct {
	JID  string `xml:"jid,attr"`
	Node string `xml:"node,attr"`
	Form *form  `xml:"jabber:x:data x"`
}

var errBadRequest = stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}

// decodeCommand reads an <enable/> or <disable/> set and its app
// server's JID.
func decodeCommand(req router.IQRequest) (command, jid.JID, error) {
	var c command
	if req.Stanza.Type != "set" {
		return c, jid.JID{}, errBadRequest
	}
	if err := req.Stanza.DecodePayload(&c); err != nil {
		return c, jid.JID{}, errBadRequest
	}
	service, err := jid.Parse(c.JID)
	if err != nil {
		return c, jid.JID{}, errBadRequest
	}
	return c, service, nil
}

// enable stores a registration (XEP-0357 §5).
func (m *Module) enable(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	c, service, err := decodeCommand(req)
	if err != nil {
		return nil, err
	}
	if c.Node == "" {
		return nil, errBadRequest
	}
	reg := storage.PushRegistration{Service: service.String(), Node: c.Node}
	if c.Form != nil {
		c.Form.Type = "submit"
		if reg.Options, err = xml.Marshal(c.Form); err != nil {
			return nil, errBadRequest
		}
	}
	if len(reg.Node)+len(reg.Options) > MaxRegistrationBytes {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: map[string]string{
			"": "node and publish-options larger than 4 KiB",
		}}
	}
	user := req.From.Bare()
	err = m.store.EnablePush(ctx, user.Domainpart(), user.Localpart(), reg, m.opts.MaxRegistrations)
	if errors.Is(err, storage.ErrQuota) {
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: map[string]string{
			"": "too many push registrations; disable one first",
		}}
	}
	return nil, err
}

// disable removes registrations (XEP-0357 §6).
func (m *Module) disable(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	c, service, err := decodeCommand(req)
	if err != nil {
		return nil, err
	}
	user := req.From.Bare()
	_, err = m.store.DisablePush(ctx, user.Domainpart(), user.Localpart(), service.String(), c.Node)
	return nil, err
}

// messageOffline publishes for a user with no available resource.
func (m *Module) messageOffline(ev *router.EventData) bool {
	m.maybePublish(ev.Ctx, ev.To.Bare(), ev.Stanza)
	return false
}

// messageDelivered publishes when the session that got the message waits
// for resumption.
func (m *Module) messageDelivered(ev *router.EventData) bool {
	if w, ok := ev.Target.(Waiting); ok && w.Waiting() {
		m.maybePublish(ev.Ctx, ev.Target.JID().Bare(), ev.Stanza)
	}
	return false
}

// sessionBound forgets what the user missed: a client is back.
func (m *Module) sessionBound(ev *router.EventData) bool {
	m.mu.Lock()
	delete(m.users, ev.Target.JID().Bare().String())
	m.mu.Unlock()
	return false
}

// unreachable reports whether every session of user is waiting (or
// there is none).
func (m *Module) unreachable(user jid.JID) bool {
	for _, t := range m.core.Resources(user) {
		if w, ok := t.(Waiting); !ok || !w.Waiting() {
			return false
		}
	}
	return true
}

// maybePublish counts a message with a body for a user who cannot take
// it now, and publishes to the user's registrations unless one was
// published less than Interval ago.
func (m *Module) maybePublish(ctx context.Context, user jid.JID, st *element.Stanza) {
	if _, ok := st.Child(element.NSClient, "body"); !ok || st.Type == "groupchat" || st.Type == "error" ||
		!m.core.Serves(user.Domainpart()) || !m.unreachable(user) {
		return
	}
	now := m.opts.Now()
	m.mu.Lock()
	p := m.users[user.String()]
	if p == nil {
		if len(m.users) >= m.opts.MaxUsers {
			for k := range m.users { // forget one, any
				delete(m.users, k)
				break
			}
		}
		p = &pending{}
		m.users[user.String()] = p
	}
	if p.delivered == st {
		m.mu.Unlock()
		return // another copy of the same message
	}
	p.delivered = st
	p.count++
	count, due := p.count, p.last.IsZero() || now.Sub(p.last) >= m.opts.Interval
	if due {
		p.last = now
	}
	m.mu.Unlock()
	if !due {
		return
	}
	regs, err := m.store.PushRegistrations(ctx, user.Domainpart(), user.Localpart())
	if err != nil {
		m.logger.Error("loading push registrations failed", "user", user.String(), "err", err)
		return
	}
	for _, reg := range regs {
		m.publish(ctx, user, reg, count, st)
	}
}

// publish sends one notification to reg's app server, through the core,
// from the user's bare JID (XEP-0357 §7).
func (m *Module) publish(ctx context.Context, user jid.JID, reg storage.PushRegistration, count int, st *element.Stanza) {
	service, err := jid.Parse(reg.Service)
	if err != nil {
		m.logger.Error("bad stored push service", "user", user.String(), "service", reg.Service, "err", err)
		return
	}
	payload, err := notification(reg, count, st)
	if err != nil {
		m.logger.Error("building a push notification failed", "user", user.String(), "err", err)
		return
	}
	iq, err := element.New("iq", "set", user, service, randid.New(), xml.NewDecoder(bytes.NewReader(payload)))
	if err != nil {
		m.logger.Error("building a push notification failed", "user", user.String(), "err", err)
		return
	}
	p := &publisher{m: m, ctx: context.WithoutCancel(ctx), user: user, reg: reg, id: iq.ID}
	m.core.Route(ctx, p, iq)
}

// notification is the pubsub payload of a publish.
func notification(reg storage.PushRegistration, count int, st *element.Stanza) ([]byte, error) {
	summary := form{Type: "form", Fields: []field{
		{Var: "FORM_TYPE", Type: "hidden", Values: []string{summaryForm}},
		{Var: "message-count", Values: []string{strconv.Itoa(count)}},
		{Var: "last-message-sender", Values: []string{st.From.String()}},
	}}
	var opts *form
	if len(reg.Options) > 0 {
		opts = new(form)
		if err := xml.Unmarshal(reg.Options, opts); err != nil {
			return nil, err
		}
		if includeBody(opts) {
			summary.Fields = append(summary.Fields, field{Var: "last-message-body", Values: []string{st.ChildText(element.NSClient, "body")}})
		}
	}
	type publishOpts struct {
		Form *form `xml:"jabber:x:data x"`
	}
	type pubsub struct {
		XMLName xml.Name `xml:"http://jabber.org/protocol/pubsub pubsub"`
		Publish struct {
			Node string `xml:"node,attr"`
			Item struct {
				Notification struct {
					XMLName xml.Name `xml:"urn:xmpp:push:0 notification"`
					Form    form
				} `xml:"notification"`
			} `xml:"item"`
		} `xml:"publish"`
		Options *publishOpts `xml:"publish-options"`
	}
	var ps pubsub
	ps.Publish.Node = reg.Node
	ps.Publish.Item.Notification.Form = summary
	if opts != nil {
		ps.Options = &publishOpts{Form: opts}
	}
	return xml.Marshal(ps)
}

// includeBody reports whether publish-options ask for the body.
func includeBody(f *form) bool {
	for _, fl := range f.Fields {
		if fl.Var == IncludeBody && len(fl.Values) == 1 && (fl.Values[0] == "true" || fl.Values[0] == "1") {
			return true
		}
	}
	return false
}

// publisher is the user's account as the sender of one publish: the
// app server's answer (or the core's bounce) comes back to it.
type publisher struct {
	m    *Module
	ctx  context.Context
	user jid.JID
	reg  storage.PushRegistration
	id   string
}

// JID is the user's bare JID, the publish's from.
func (p *publisher) JID() jid.JID { return p.user }

// Deliver takes the answer to the publish: an error other than a wait
// disables the registration.
func (p *publisher) Deliver(st *element.Stanza) bool {
	if st.Name != "iq" || st.ID != p.id || st.Type != "error" {
		return true
	}
	if errorType(st) == stanza.Wait {
		p.m.logger.Info("push app server asks to wait", "user", p.user.String(), "service", p.reg.Service)
		return true
	}
	p.m.logger.Info("push app server refused a notification: registration disabled", "user", p.user.String(), "service", p.reg.Service, "node", p.reg.Node)
	if _, err := p.m.store.DisablePush(p.ctx, p.user.Domainpart(), p.user.Localpart(), p.reg.Service, p.reg.Node); err != nil {
		p.m.logger.Error("disabling a push registration failed", "user", p.user.String(), "err", err)
	}
	return true
}

// Close does nothing: a publisher has no connection.
func (p *publisher) Close(stream.Error) {}

// errorType returns the type of an error stanza's <error/>.
func errorType(st *element.Stanza) stanza.ErrorType {
	depth := 0
	for _, tok := range st.Tokens() {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name.Local == "error" && (t.Name.Space == "" || t.Name.Space == element.NSClient) {
				for _, a := range t.Attr {
					if a.Name.Local == "type" {
						return stanza.ErrorType(a.Value)
					}
				}
				return ""
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return ""
}
