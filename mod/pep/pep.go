// Package pep is XEP-0163, personal eventing: every account is a
// publish-subscribe service (XEP-0060) of its owner's, with the subset
// of XEP-0060 clients use: publish (item ids, the node created on first
// publish), publish-options preconditions, retract, items (all, by id,
// max_items), create, delete, purge and the node configuration
// (pubsub#access_model open, presence or whitelist; persist_items;
// max_items, "max" included; send_last_published_item). Errors carry
// XEP-0060's application-specific conditions.
//
// Notifications go to the owner's available resources and, unless the
// node is whitelist, to the available resources of contacts subscribed
// to the owner's presence; to each only when its XEP-0115 capabilities
// hold the node's +notify feature (presence without capabilities gets
// nothing). The server learns capabilities from available presence,
// asking the client's disco#info for a ver it does not know (see caps.go);
// a ver is shared between users only once its hash verified. The last
// item of each node is sent, with a delay stamp, when a resource's
// +notify features become known (it came online), and to a contact when
// the owner approves its subscription.
//
// On top of it: XEP-0084 avatars (with XEP-0398's hash in presence,
// vcardconv.go), XEP-0402 bookmarks with XEP-0048's storage:bookmarks
// private XML as a view of them (Bookmarks, XEP-0411), and the OMEMO
// device list and bundle nodes, all plain PEP nodes.
//
// Iq handlers: http://jabber.org/protocol/pubsub and #owner <pubsub/>,
// on the user's own account and on other accounts (only items, access
// permitting). The accounts' disco#info gets the identity pubsub/pep and
// the pubsub features. Hooks:
//   - PresenceBroadcast (0): read the session's capabilities.
//   - PresenceOut (1000, never stops): available presence from a user
//     with an XEP-0084 avatar gets its hash (XEP-0398, vcardconv.go).
//   - PresenceOut (150, never stops): a subscription approval sends the
//     new subscriber the last items.
//   - IQResponse (0): answers to the capability queries.
//   - SessionUnbound (0): the session's capabilities go.
//
// Limits (Options): nodes and payload bytes per user, checked in the
// store's transaction on every write; items per node (max_items) and
// bytes per item checked before.
package pep

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/internal/randid"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// Namespaces.
const (
	nsPubSub = "http://jabber.org/protocol/pubsub"
	nsOwner  = nsPubSub + "#owner"
	nsEvent  = nsPubSub + "#event"
	nsErrors = nsPubSub + "#errors"
	nsData   = "jabber:x:data"
	nsDelay  = "urn:xmpp:delay"
)

// Store holds the PEP nodes and items, and reads rosters. Users are
// identified by host and nodeprepped username.
type Store interface {
	// PEPNode returns one node; ok is false when there is none.
	PEPNode(ctx context.Context, host, user, node string) (storage.PEPNode, bool, error)
	// PEPNodes returns the user's nodes by name.
	PEPNodes(ctx context.Context, host, user string) ([]storage.PEPNode, error)
	// CreatePEPNode creates a node: an error wrapping storage.ErrExists
	// for one that exists, storage.ErrQuota for one more than lim.Nodes.
	CreatePEPNode(ctx context.Context, host, user string, n storage.PEPNode, lim storage.PEPLimits) error
	// ConfigurePEPNode replaces a node's configuration (storage.ErrNotFound
	// without the node) and deletes its oldest items beyond it.
	ConfigurePEPNode(ctx context.Context, host, user string, n storage.PEPNode) error
	// DeletePEPNode deletes a node and its items, reporting whether it
	// existed.
	DeletePEPNode(ctx context.Context, host, user, node string) (bool, error)
	// PurgePEPNode deletes a node's items (storage.ErrNotFound without
	// the node).
	PurgePEPNode(ctx context.Context, host, user, node string) error
	// PublishPEPItem creates the node with n if it does not exist,
	// replaces an item of the same id and deletes the node's oldest
	// items beyond its configuration, within lim (storage.ErrQuota),
	// in one transaction; it returns the node's configuration and
	// whether it created it.
	PublishPEPItem(ctx context.Context, host, user string, n storage.PEPNode, it storage.PEPItem, lim storage.PEPLimits) (storage.PEPNode, bool, error)
	// RetractPEPItem deletes one item, reporting whether it existed
	// (storage.ErrNotFound without the node).
	RetractPEPItem(ctx context.Context, host, user, node, id string) (bool, error)
	// PEPItems returns a node's items newest first: those of ids when
	// ids is not empty, else all, at most max when max > 0.
	PEPItems(ctx context.Context, host, user, node string, ids []string, max int) ([]storage.PEPItem, error)
	// Roster returns the user's roster entries and version.
	Roster(ctx context.Context, host, user string) ([]storage.RosterItem, int64, error)
	// RosterItem returns one entry; ok is false when there is none.
	RosterItem(ctx context.Context, host, user, contact string) (storage.RosterItem, bool, error)
}

// The defaults of Options' zero values (config's defaults too).
const (
	DefaultMaxNodes       = 256
	DefaultMaxItems       = 256
	DefaultMaxItemBytes   = 128 << 10
	DefaultMaxBytes       = 4 << 20
	DefaultMaxResultBytes = 256 << 10
	DefaultCapsCache      = 10000
	DefaultCapsQueries    = 1000
)

// MaxNameBytes bounds a node name and an item id: they are stored with
// every item and do not count against the payload limits. A longer one is
// not-acceptable.
const MaxNameBytes = 1024

// Options are the module's limits.
type Options struct {
	// MaxNodes is the most nodes of one user (pep_nodes); 0 is
	// DefaultMaxNodes.
	MaxNodes int
	// MaxItems is the most items one node keeps, what max_items "max"
	// means (pep_items); 0 is DefaultMaxItems.
	MaxItems int
	// MaxItemBytes is the largest item payload (pep_item_bytes); 0 is
	// DefaultMaxItemBytes.
	MaxItemBytes int
	// MaxBytes is the most payload bytes of one user (pep_bytes); 0 is
	// DefaultMaxBytes.
	MaxBytes int64
	// MaxResultBytes bounds the payloads of one items result: the
	// newest items that fit are returned; 0 is DefaultMaxResultBytes.
	MaxResultBytes int
	// CapsCache is the most capability hashes remembered, CapsQueries
	// the most disco#info queries to clients awaiting an answer; 0 is
	// the Default of each.
	CapsCache, CapsQueries int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Module is the PEP service registered with one core.
type Module struct {
	core   *router.Router
	store  Store
	opts   Options
	logger *slog.Logger
	caps   *capsTracker
}

// accountFeatures are the pubsub features every account's disco#info
// lists (XEP-0163 §6.1, XEP-0060 §10).
var accountFeatures = []string{
	nsPubSub + "#access-open", nsPubSub + "#access-presence", nsPubSub + "#access-whitelist",
	nsPubSub + "#auto-create", nsPubSub + "#auto-subscribe", nsPubSub + "#config-node",
	nsPubSub + "#create-and-configure", nsPubSub + "#create-nodes", nsPubSub + "#delete-items",
	nsPubSub + "#delete-nodes", nsPubSub + "#filtered-notifications", nsPubSub + "#item-ids",
	nsPubSub + "#last-published", nsPubSub + "#multi-items", nsPubSub + "#persistent-items",
	nsPubSub + "#presence-notifications", nsPubSub + "#publish", nsPubSub + "#publish-options",
	nsPubSub + "#purge-nodes", nsPubSub + "#retract-items", nsPubSub + "#retrieve-affiliations",
	nsPubSub + "#retrieve-default", nsPubSub + "#retrieve-items", nsPubSub + "#config-node-max",
}

// Register adds the PEP service to core.
func Register(core *router.Router, store Store, opts Options) (*Module, error) {
	defaults.Positive(&opts.MaxNodes, DefaultMaxNodes)
	defaults.Positive(&opts.MaxItems, DefaultMaxItems)
	defaults.Positive(&opts.MaxItemBytes, DefaultMaxItemBytes)
	defaults.Positive(&opts.MaxBytes, DefaultMaxBytes)
	defaults.Positive(&opts.MaxResultBytes, DefaultMaxResultBytes)
	defaults.Positive(&opts.CapsCache, DefaultCapsCache)
	defaults.Positive(&opts.CapsQueries, DefaultCapsQueries)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Module{core: core, store: store, opts: opts, logger: core.Logger().With("module", "pep")}
	m.caps = newCapsTracker(m)
	for _, h := range []struct {
		ns      string
		feature string
		fn      router.IQHandlerFunc
	}{{nsPubSub, nsPubSub, m.handlePubSub}, {nsOwner, "", m.handleOwner}} {
		if err := core.HandleIQ(xml.Name{Space: h.ns, Local: "pubsub"}, router.AtSelf|router.AtAccount, h.feature, h.fn); err != nil {
			return nil, fmt.Errorf("pep: %w", err)
		}
	}
	if err := core.AddAccountIdentity("pubsub", "pep"); err != nil {
		return nil, fmt.Errorf("pep: %w", err)
	}
	for _, f := range append(slices.Clip(accountFeatures), nsVCardConversion) {
		if err := core.AddAccountFeature(f); err != nil {
			return nil, fmt.Errorf("pep: %w", err)
		}
	}
	if err := core.Hooks("pep",
		router.HookSpec{Event: router.PresenceBroadcast, Priority: 0, Fn: m.caps.presence},
		router.HookSpec{Event: router.PresenceOut, Priority: 1000, Fn: m.vcardUpdate},
		router.HookSpec{Event: router.PresenceOut, Priority: 150, Fn: m.presenceOut},
		router.HookSpec{Event: router.IQResponse, Priority: 0, Fn: m.caps.response},
		router.HookSpec{Event: router.SessionUnbound, Priority: 0, Fn: m.caps.unbound},
	); err != nil {
		return nil, err
	}
	return m, nil
}

// limits are the store's limits of one write.
func (m *Module) limits() storage.PEPLimits {
	return storage.PEPLimits{Nodes: m.opts.MaxNodes, Bytes: m.opts.MaxBytes}
}

// defaultNode is the configuration of a node created without options
// (XEP-0163 §5's defaults): presence access, the last item kept.
func defaultNode(name string) storage.PEPNode {
	return storage.PEPNode{Node: name, Access: "presence", MaxItems: 1, PersistItems: true, SendLast: "on_sub_and_presence"}
}

// newNode is the configuration a node named name starts from when a
// publish or create makes it: XEP-0163's defaults, except the XEP-0402
// bookmarks node, which starts as XEP-0402 §5 asks (whitelist, every item
// kept). A client that publishes bookmarks without publish-options would
// otherwise show its room passwords to every contact and keep one room.
func (m *Module) newNode(name string) storage.PEPNode {
	if name == NodeBookmarks {
		return m.bookmarksNode()
	}
	return defaultNode(name)
}

// fail answers req with an error carrying the application-specific
// condition app of XEP-0060 (with feature for <unsupported/>) and
// returns router.ErrAnswered.
func (m *Module) fail(req router.IQRequest, se stanza.Error, app, feature string) error {
	reply := req.Stanza.ErrorReply(req.To, se)
	reply.To = req.From
	toks := reply.Tokens()
	if n := len(toks); n > 0 && app != "" {
		appToks := []xml.Token{
			xml.StartElement{Name: xml.Name{Space: nsErrors, Local: app}, Attr: attrs("feature", feature)},
			xml.EndElement{Name: xml.Name{Space: nsErrors, Local: app}},
		}
		// The error element is last: the condition goes in before its end.
		reply.SetTokens(append(slices.Clone(toks[:n-1]), append(appToks, toks[n-1])...))
	}
	m.core.Deliver(req.Session, reply)
	return router.ErrAnswered
}

// Errors of XEP-0060, by the section that names them.
var (
	errBadRequest    = stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	errForbidden     = stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
	errItemNotFound  = stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	errNotAcceptable = stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable}
	errConflict      = stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict}
	errConstraint    = stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
	errNotImpl       = stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
)

// request is a parsed <pubsub/>: its verb (the first child that is not
// publish-options or configure) and those companions.
type request struct {
	verb, options, configure elem
}

func parseRequest(req router.IQRequest, space string) (request, bool) {
	var r request
	ps := elem(req.Stanza.PayloadTokens())
	for _, c := range ps.children() {
		if c.start().Name.Space != space {
			continue
		}
		switch c.start().Name.Local {
		case "publish-options":
			r.options = c
		case "configure":
			if space == nsPubSub {
				r.configure = c
				continue
			}
			fallthrough
		default:
			if r.verb == nil {
				r.verb = c
			}
		}
	}
	return r, r.verb != nil
}

// handlePubSub answers the pubsub namespace.
func (m *Module) handlePubSub(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	r, ok := parseRequest(req, nsPubSub)
	if !ok {
		return nil, errBadRequest
	}
	owner := req.To.Bare()
	isOwner := req.From.Bare().Equal(owner)
	get := req.Stanza.Type == "get"
	verb := r.verb.start().Name.Local
	switch {
	case verb == "items" && get:
		return m.items(ctx, req, r.verb, isOwner)
	case verb == "subscribe" || verb == "unsubscribe" || verb == "options":
		return nil, m.fail(req, errNotImpl, "unsupported", "subscribe")
	case !isOwner:
		return nil, errForbidden
	case verb == "publish" && !get:
		return m.publish(ctx, req, r)
	case verb == "retract" && !get:
		return m.retract(ctx, req, r.verb)
	case verb == "create" && !get:
		return m.create(ctx, req, r)
	case verb == "subscriptions" && get:
		return build(xml.Name{Space: nsPubSub, Local: "pubsub"}, nil, build(xml.Name{Local: "subscriptions"}, nil)), nil
	case verb == "affiliations" && get:
		return m.affiliations(ctx, req)
	}
	return nil, errBadRequest
}

// handleOwner answers the pubsub#owner namespace: the owner's only.
func (m *Module) handleOwner(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	r, ok := parseRequest(req, nsOwner)
	if !ok {
		return nil, errBadRequest
	}
	if !req.From.Bare().Equal(req.To.Bare()) {
		return nil, errForbidden
	}
	get := req.Stanza.Type == "get"
	switch verb := r.verb.start().Name.Local; {
	case verb == "configure" && get:
		return m.configureGet(ctx, req, r.verb)
	case verb == "configure":
		return m.configureSet(ctx, req, r.verb)
	case verb == "default" && get:
		return build(xml.Name{Space: nsOwner, Local: "pubsub"}, nil,
			build(xml.Name{Local: "default"}, nil, renderForm("form", configForm(defaultNode(""))))), nil
	case verb == "delete" && !get:
		return m.deleteNode(ctx, req, r.verb)
	case verb == "purge" && !get:
		return m.purge(ctx, req, r.verb)
	case verb == "subscriptions" && get:
		return build(xml.Name{Space: nsOwner, Local: "pubsub"}, nil, build(xml.Name{Local: "subscriptions"}, attrs("node", r.verb.attr("node")))), nil
	case verb == "affiliations" && get:
		node := r.verb.attr("node")
		if _, err := m.node(ctx, req.To.Bare(), node); err != nil {
			return nil, err
		}
		return build(xml.Name{Space: nsOwner, Local: "pubsub"}, nil, build(xml.Name{Local: "affiliations"}, attrs("node", node),
			build(xml.Name{Local: "affiliation"}, attrs("jid", req.To.Bare().String(), "affiliation", "owner")))), nil
	case verb == "affiliations" || verb == "subscriptions":
		return nil, m.fail(req, errNotImpl, "unsupported", "modify-"+verb)
	}
	return nil, errBadRequest
}

// node returns a node of owner's, item-not-found when there is none.
func (m *Module) node(ctx context.Context, owner jid.JID, name string) (storage.PEPNode, error) {
	n, ok, err := m.store.PEPNode(ctx, owner.Domainpart(), owner.Localpart(), name)
	if err != nil {
		return n, fmt.Errorf("pep: node %s of %s: %w", name, owner, err)
	}
	if !ok {
		return n, errItemNotFound
	}
	return n, nil
}

// publish handles <publish/> (XEP-0060 §7.1) with publish-options
// (§7.1.5).
func (m *Module) publish(ctx context.Context, req router.IQRequest, r request) (xml.TokenReader, error) {
	owner := req.To.Bare()
	name := r.verb.attr("node")
	if name == "" {
		return nil, m.fail(req, errBadRequest, "nodeid-required", "")
	}
	var items []elem
	for _, c := range r.verb.children() {
		if c.is(nsPubSub, "item") {
			items = append(items, c)
		}
	}
	if len(items) == 0 {
		return nil, m.fail(req, errBadRequest, "item-required", "")
	}
	if len(items) > 1 {
		return nil, m.fail(req, errBadRequest, "invalid-payload", "")
	}
	payloads := items[0].children()
	if len(payloads) == 0 {
		return nil, m.fail(req, errBadRequest, "payload-required", "")
	}
	if len(payloads) > 1 {
		return nil, m.fail(req, errBadRequest, "invalid-payload", "")
	}
	payload, err := element.EncodeTokens(payloads[0])
	if err != nil {
		return nil, m.fail(req, errBadRequest, "invalid-payload", "")
	}
	if len(payload) > m.opts.MaxItemBytes {
		return nil, m.fail(req, errNotAcceptable, "payload-too-big", "")
	}
	id := items[0].attr("id")
	if id == "" {
		id = randid.New()
	}
	if len(name) > MaxNameBytes || len(id) > MaxNameBytes {
		return nil, errNotAcceptable
	}
	cfg := m.newNode(name)
	if r.options != nil {
		var ok bool
		if cfg, ok = m.preconditions(ctx, owner, name, r.options); !ok {
			return nil, m.fail(req, errConflict, "precondition-not-met", "")
		}
	}
	it := storage.PEPItem{ID: id, Payload: payload, Published: m.opts.Now()}
	n, _, err := m.store.PublishPEPItem(ctx, owner.Domainpart(), owner.Localpart(), cfg, it, m.limits())
	if errors.Is(err, storage.ErrQuota) {
		return nil, errConstraint
	}
	if err != nil {
		return nil, fmt.Errorf("pep: publishing to %s of %s: %w", name, owner, err)
	}
	m.answer(req, build(xml.Name{Space: nsPubSub, Local: "pubsub"}, nil,
		build(xml.Name{Local: "publish"}, attrs("node", name), build(xml.Name{Local: "item"}, attrs("id", id)))))
	m.notify(ctx, owner, n, build(xml.Name{Local: "item"}, attrs("id", id), element.Stored(payload)))
	return nil, router.ErrAnswered
}

// answer sends req its result before the notifications the request
// causes (XEP-0060 §7.1.2); the handler then returns router.ErrAnswered.
func (m *Module) answer(req router.IQRequest, payload xml.TokenReader) {
	reply := req.Stanza.Reply(req.To, payload)
	reply.To = req.From
	m.core.Deliver(req.Session, reply)
}

// preconditions checks publish-options against the node's
// configuration, or makes them the configuration of a node to create,
// and reports whether they hold.
func (m *Module) preconditions(ctx context.Context, owner jid.JID, name string, options elem) (storage.PEPNode, bool) {
	x, ok := options.child(nsData, "x")
	if !ok {
		return m.newNode(name), true // an empty publish-options asks nothing
	}
	f, err := parseForm(x)
	if err != nil || (f.formType != "" && f.formType != formOptions) {
		return storage.PEPNode{}, false
	}
	cur, exists, err := m.store.PEPNode(ctx, owner.Domainpart(), owner.Localpart(), name)
	if err != nil {
		m.logger.Error("reading a node failed", "owner", owner.String(), "node", name, "err", err)
		return storage.PEPNode{}, false
	}
	if !exists {
		cur = m.newNode(name)
	}
	want := cur
	if err := f.apply(&want, m.opts.MaxItems); err != nil {
		return storage.PEPNode{}, false
	}
	if exists && want != cur {
		return storage.PEPNode{}, false
	}
	return want, true
}

// retract handles <retract/> (XEP-0060 §7.2); subscribers are notified.
func (m *Module) retract(ctx context.Context, req router.IQRequest, verb elem) (xml.TokenReader, error) {
	owner := req.To.Bare()
	name := verb.attr("node")
	if name == "" {
		return nil, m.fail(req, errBadRequest, "nodeid-required", "")
	}
	item, ok := verb.child(nsPubSub, "item")
	if !ok || item.attr("id") == "" {
		return nil, m.fail(req, errBadRequest, "item-required", "")
	}
	n, err := m.node(ctx, owner, name)
	if err != nil {
		return nil, err
	}
	id := item.attr("id")
	existed, err := m.store.RetractPEPItem(ctx, owner.Domainpart(), owner.Localpart(), name, id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !existed) {
		return nil, errItemNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pep: retracting from %s of %s: %w", name, owner, err)
	}
	m.answer(req, nil)
	m.notify(ctx, owner, n, build(xml.Name{Local: "retract"}, attrs("id", id)))
	return nil, router.ErrAnswered
}

// create handles <create/> with an optional <configure/> (XEP-0060
// §8.1).
func (m *Module) create(ctx context.Context, req router.IQRequest, r request) (xml.TokenReader, error) {
	owner := req.To.Bare()
	name := r.verb.attr("node")
	if name == "" {
		// No instant nodes in PEP (XEP-0163 §3).
		return nil, m.fail(req, errNotAcceptable, "nodeid-required", "")
	}
	if len(name) > MaxNameBytes {
		return nil, errNotAcceptable
	}
	n := m.newNode(name)
	if r.configure != nil {
		if x, ok := r.configure.child(nsData, "x"); ok {
			f, err := parseForm(x)
			if err != nil || f.apply(&n, m.opts.MaxItems) != nil {
				return nil, errNotAcceptable
			}
		}
	}
	err := m.store.CreatePEPNode(ctx, owner.Domainpart(), owner.Localpart(), n, m.limits())
	switch {
	case errors.Is(err, storage.ErrExists):
		return nil, errConflict
	case errors.Is(err, storage.ErrQuota):
		return nil, errConstraint
	case err != nil:
		return nil, fmt.Errorf("pep: creating %s of %s: %w", name, owner, err)
	}
	return nil, nil
}

// items handles <items/> (XEP-0060 §6.5): the owner's, or a contact's
// as the node's access model permits.
func (m *Module) items(ctx context.Context, req router.IQRequest, verb elem, isOwner bool) (xml.TokenReader, error) {
	owner := req.To.Bare()
	name := verb.attr("node")
	if name == "" {
		return nil, m.fail(req, errBadRequest, "nodeid-required", "")
	}
	n, err := m.node(ctx, owner, name)
	if err != nil {
		return nil, err
	}
	if !isOwner {
		if err := m.mayRead(ctx, req, owner, n); err != nil {
			return nil, err
		}
	}
	max := 0
	if s := verb.attr("max_items"); s != "" {
		if max, err = strconv.Atoi(s); err != nil || max < 1 {
			return nil, errBadRequest
		}
	}
	var ids []string
	for _, c := range verb.children() {
		if c.is(nsPubSub, "item") && c.attr("id") != "" {
			ids = append(ids, c.attr("id"))
		}
	}
	got, err := m.store.PEPItems(ctx, owner.Domainpart(), owner.Localpart(), name, ids, max)
	if err != nil {
		return nil, fmt.Errorf("pep: items of %s of %s: %w", name, owner, err)
	}
	// The newest that fit in the result, oldest first.
	size, keep := 0, 0
	for _, it := range got {
		if size += len(it.Payload); size > m.opts.MaxResultBytes && keep > 0 {
			break
		}
		keep++
	}
	var inner []xml.TokenReader
	for i := keep - 1; i >= 0; i-- {
		inner = append(inner, build(xml.Name{Local: "item"}, attrs("id", got[i].ID), element.Stored(got[i].Payload)))
	}
	return build(xml.Name{Space: nsPubSub, Local: "pubsub"}, nil, build(xml.Name{Local: "items"}, attrs("node", name), inner...)), nil
}

// mayRead checks that the requester may read the owner's node n
// (XEP-0060 §6.5.9: the errors of each access model).
func (m *Module) mayRead(ctx context.Context, req router.IQRequest, owner jid.JID, n storage.PEPNode) error {
	switch n.Access {
	case "open":
		return nil
	case "presence":
		if m.subscribed(ctx, owner, req.From.Bare()) {
			return nil
		}
		return m.fail(req, stanza.Error{Type: stanza.Auth, Condition: stanza.NotAuthorized}, "presence-subscription-required", "")
	}
	return m.fail(req, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed}, "closed-node", "")
}

// subscribed reports whether contact is subscribed to owner's presence.
func (m *Module) subscribed(ctx context.Context, owner, contact jid.JID) bool {
	item, ok, err := m.store.RosterItem(ctx, owner.Domainpart(), owner.Localpart(), contact.String())
	if err != nil {
		m.logger.Error("reading a roster item failed", "owner", owner.String(), "err", err)
		return false
	}
	return ok && item.From
}

// affiliations lists the owner's nodes (XEP-0060 §5.7): owner of each.
func (m *Module) affiliations(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	owner := req.To.Bare()
	nodes, err := m.store.PEPNodes(ctx, owner.Domainpart(), owner.Localpart())
	if err != nil {
		return nil, fmt.Errorf("pep: nodes of %s: %w", owner, err)
	}
	var inner []xml.TokenReader
	for _, n := range nodes {
		inner = append(inner, build(xml.Name{Local: "affiliation"}, attrs("node", n.Node, "affiliation", "owner")))
	}
	return build(xml.Name{Space: nsPubSub, Local: "pubsub"}, nil, build(xml.Name{Local: "affiliations"}, nil, inner...)), nil
}

func (m *Module) configureGet(ctx context.Context, req router.IQRequest, verb elem) (xml.TokenReader, error) {
	name := verb.attr("node")
	if name == "" {
		return nil, m.fail(req, errBadRequest, "nodeid-required", "")
	}
	n, err := m.node(ctx, req.To.Bare(), name)
	if err != nil {
		return nil, err
	}
	return build(xml.Name{Space: nsOwner, Local: "pubsub"}, nil,
		build(xml.Name{Local: "configure"}, attrs("node", name), renderForm("form", configForm(n)))), nil
}

// configureSet changes a node's configuration (XEP-0060 §8.2.4): a value
// ottr does not take, max_items above the limit included, is
// not-acceptable (§8.2.5.3).
func (m *Module) configureSet(ctx context.Context, req router.IQRequest, verb elem) (xml.TokenReader, error) {
	owner := req.To.Bare()
	name := verb.attr("node")
	if name == "" {
		return nil, m.fail(req, errBadRequest, "nodeid-required", "")
	}
	n, err := m.node(ctx, owner, name)
	if err != nil {
		return nil, err
	}
	x, ok := verb.child(nsData, "x")
	if !ok {
		return nil, errBadRequest
	}
	if x.attr("type") == "cancel" {
		return nil, nil
	}
	f, err := parseForm(x)
	if err != nil || (f.formType != "" && f.formType != formConfig) {
		return nil, errBadRequest
	}
	if err := f.apply(&n, m.opts.MaxItems); err != nil {
		return nil, errNotAcceptable
	}
	err = m.store.ConfigurePEPNode(ctx, owner.Domainpart(), owner.Localpart(), n)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errItemNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pep: configuring %s of %s: %w", name, owner, err)
	}
	return nil, nil
}

// deleteNode deletes a node (XEP-0060 §8.4); subscribers are notified.
func (m *Module) deleteNode(ctx context.Context, req router.IQRequest, verb elem) (xml.TokenReader, error) {
	owner := req.To.Bare()
	n, err := m.node(ctx, owner, verb.attr("node"))
	if err != nil {
		return nil, err
	}
	if _, err := m.store.DeletePEPNode(ctx, owner.Domainpart(), owner.Localpart(), n.Node); err != nil {
		return nil, fmt.Errorf("pep: deleting %s of %s: %w", n.Node, owner, err)
	}
	m.answer(req, nil)
	m.notifyNode(ctx, owner, n, "delete")
	return nil, router.ErrAnswered
}

// purge deletes a node's items (XEP-0060 §8.5); subscribers are
// notified.
func (m *Module) purge(ctx context.Context, req router.IQRequest, verb elem) (xml.TokenReader, error) {
	owner := req.To.Bare()
	n, err := m.node(ctx, owner, verb.attr("node"))
	if err != nil {
		return nil, err
	}
	err = m.store.PurgePEPNode(ctx, owner.Domainpart(), owner.Localpart(), n.Node)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errItemNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pep: purging %s of %s: %w", n.Node, owner, err)
	}
	m.answer(req, nil)
	m.notifyNode(ctx, owner, n, "purge")
	return nil, router.ErrAnswered
}

// renderForm renders a data form of type typ.
func renderForm(typ string, fields []fieldValue) xml.TokenReader {
	var inner []xml.TokenReader
	for _, f := range fields {
		var vals []xml.TokenReader
		for _, v := range f.values {
			vals = append(vals, element.Text("value", v))
		}
		for _, o := range f.options {
			vals = append(vals, build(xml.Name{Local: "option"}, nil, element.Text("value", o)))
		}
		inner = append(inner, build(xml.Name{Local: "field"}, attrs("var", f.v, "type", f.typ), vals...))
	}
	return build(xml.Name{Space: nsData, Local: "x"}, attrs("type", typ), inner...)
}
