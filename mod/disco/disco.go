// Package disco is XEP-0030, service discovery: the server's disco#info
// (identity server/im "ottr", the features the modules registered and
// the XEP-0157 contact addresses form), a local account's disco#info
// (identity account/registered, those modules add such as pubsub/pep,
// and the account features), the host's
// disco#items (the services on its subdomains, router.Subdomains) and
// empty disco#items for the accounts. It also computes the server's own
// XEP-0115 capabilities, advertised in the stream features, and answers
// disco#info at their node#ver. It adds no hooks and keeps nothing per
// session.
package disco

import (
	"context"
	"encoding/xml"
	"fmt"
	"sync/atomic"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/caps"
	"ottr.im/ottr/router"
)

const (
	nsInfo  = "http://jabber.org/protocol/disco#info"
	nsItems = "http://jabber.org/protocol/disco#items"

	// CapsNode identifies ottr in its XEP-0115 capabilities.
	CapsNode = "https://ottr.im"
	// serverInfo is XEP-0157's FORM_TYPE.
	serverInfo = "http://jabber.org/network/serverinfo"
)

// ContactFields are the XEP-0157 fields, by the suffix of their var
// (abuse is abuse-addresses), in the order Options.Contacts is checked.
var ContactFields = []string{"abuse", "admin", "feedback", "sales", "security", "status", "support"}

// Options configure the server's disco#info.
type Options struct {
	// Contacts are the server's XEP-0157 contact addresses (URIs such as
	// mailto: or xmpp:), by the ContactFields name. Empty: no form.
	Contacts map[string][]string
}

// Module answers disco queries; Caps gives the server's capabilities.
type Module struct {
	core *router.Router
	form []caps.Field // XEP-0157, nil when no address is configured

	ver atomic.Pointer[string] // the caps ver, once the core started
}

// Register adds the disco#info and disco#items handlers to core. An
// unknown contact field is an error.
func Register(core *router.Router, opts Options) (*Module, error) {
	m := &Module{core: core}
	for name := range opts.Contacts {
		if !known(name) {
			return nil, fmt.Errorf("disco: unknown contact address field %q (want one of %v)", name, ContactFields)
		}
	}
	for _, name := range ContactFields {
		if v := opts.Contacts[name]; len(v) > 0 {
			m.form = append(m.form, caps.Field{Var: name + "-addresses", Values: v})
		}
	}
	for _, reg := range []struct {
		name    xml.Name
		where   int
		feature string
		h       router.IQHandlerFunc
	}{
		{xml.Name{Space: nsInfo, Local: "query"}, router.AtServer, nsInfo, m.serverInfo},
		{xml.Name{Space: nsInfo, Local: "query"}, router.AtSelf | router.AtAccount, "", func(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
			if !core.AccountExists(ctx, req.To.Bare()) || element.Attr(req.Payload, "node") != "" {
				return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
			}
			ids := []caps.Identity{{Category: "account", Type: "registered"}}
			for _, id := range core.AccountIdentities() {
				ids = append(ids, caps.Identity{Category: id[0], Type: id[1]})
			}
			return caps.Info{
				Identities: ids,
				Features:   append([]string{nsInfo}, core.AccountFeatures()...),
			}.Query(""), nil
		}},
		{xml.Name{Space: nsItems, Local: "query"}, router.AtServer, nsItems, func(_ context.Context, req router.IQRequest) (xml.TokenReader, error) {
			if element.Attr(req.Payload, "node") != "" {
				return element.Empty(nsItems, "query"), nil
			}
			var items []xml.TokenReader
			for _, d := range core.Subdomains(req.To.Domainpart()) {
				items = append(items, xmlstream.Wrap(nil, xml.StartElement{
					Name: xml.Name{Local: "item"},
					Attr: []xml.Attr{{Name: xml.Name{Local: "jid"}, Value: d}},
				}))
			}
			return xmlstream.Wrap(xmlstream.MultiReader(items...), xml.StartElement{Name: xml.Name{Space: nsItems, Local: "query"}}), nil
		}},
		{xml.Name{Space: nsItems, Local: "query"}, router.AtSelf | router.AtAccount, "", func(context.Context, router.IQRequest) (xml.TokenReader, error) {
			return element.Empty(nsItems, "query"), nil
		}},
	} {
		if err := core.HandleIQ(reg.name, reg.where, reg.feature, getOnly(reg.h)); err != nil {
			return nil, fmt.Errorf("disco: %w", err)
		}
	}
	return m, nil
}

func known(name string) bool {
	for _, f := range ContactFields {
		if f == name {
			return true
		}
	}
	return false
}

// serverInfo answers the server's disco#info, with no node or at the
// node#ver of its capabilities (XEP-0115 §6.2).
func (m *Module) serverInfo(_ context.Context, req router.IQRequest) (xml.TokenReader, error) {
	n := element.Attr(req.Payload, "node")
	if n != "" && n != CapsNode+"#"+m.Ver() {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	}
	return m.info().Query(n), nil
}

// info is the server's disco#info, read at request time: modules
// register their features before the first session binds.
func (m *Module) info() caps.Info {
	in := caps.Info{
		Identities: []caps.Identity{{Category: "server", Type: "im", Name: "ottr"}},
		Features:   m.core.Features(),
	}
	if m.form != nil {
		in.Forms = []caps.Form{{Type: serverInfo, Fields: m.form}}
	}
	return in
}

// Ver is the XEP-0115 verification string of the server's disco#info.
// Features may be registered until the first session binds: until then
// it is computed at each call, from then on once.
func (m *Module) Ver() string {
	if v := m.ver.Load(); v != nil {
		return *v
	}
	v := m.info().Ver()
	if m.core.Started() {
		m.ver.Store(&v)
	}
	return v
}

// Caps returns the <c/> element of the server's capabilities, for the
// stream features (XEP-0115 §6.3).
func (m *Module) Caps() xml.StartElement { return caps.Element(CapsNode, m.Ver()) }

// getOnly answers a set with bad-request and passes a get to h.
func getOnly(h router.IQHandlerFunc) router.IQHandlerFunc {
	return func(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
		if req.Stanza.Type != "get" {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.BadRequest}
		}
		return h(ctx, req)
	}
}
