// Package disco is XEP-0030, service discovery: the server's disco#info
// (identity server/im "ottr" and the features the modules registered,
// read at request time), a local account's disco#info (identity
// account/registered), and empty disco#items for the server and the
// accounts. It adds no hooks and keeps nothing.
package disco

import (
	"context"
	"encoding/xml"
	"fmt"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
)

const (
	nsInfo  = "http://jabber.org/protocol/disco#info"
	nsItems = "http://jabber.org/protocol/disco#items"
)

// Register adds the disco#info and disco#items handlers to core.
func Register(core *router.Router) error {
	for _, reg := range []struct {
		name    xml.Name
		where   int
		feature string
		h       router.IQHandlerFunc
	}{
		{xml.Name{Space: nsInfo, Local: "query"}, router.AtServer, nsInfo, func(_ context.Context, req router.IQRequest) (xml.TokenReader, error) {
			return info(req, []xml.Attr{
				{Name: xml.Name{Local: "category"}, Value: "server"},
				{Name: xml.Name{Local: "type"}, Value: "im"},
				{Name: xml.Name{Local: "name"}, Value: "ottr"},
			}, core.Features())
		}},
		{xml.Name{Space: nsInfo, Local: "query"}, router.AtSelf | router.AtAccount, "", func(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
			if !core.AccountExists(ctx, req.To.Bare()) {
				return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
			}
			return info(req, []xml.Attr{
				{Name: xml.Name{Local: "category"}, Value: "account"},
				{Name: xml.Name{Local: "type"}, Value: "registered"},
			}, append([]string{nsInfo}, core.AccountFeatures()...))
		}},
		{xml.Name{Space: nsItems, Local: "query"}, router.AtServer, nsItems, func(_ context.Context, req router.IQRequest) (xml.TokenReader, error) {
			if hasNode(req) {
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
			return fmt.Errorf("disco: %w", err)
		}
	}
	return nil
}

// getOnly answers a set with bad-request and passes a get to h.
func getOnly(h router.IQHandlerFunc) router.IQHandlerFunc {
	return func(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
		if req.Stanza.Type != "get" {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.BadRequest}
		}
		return h(ctx, req)
	}
}

// info answers a disco#info get with an identity and features (in the
// order given); a node other than none has no items.
func info(req router.IQRequest, identity []xml.Attr, features []string) (xml.TokenReader, error) {
	if hasNode(req) {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	}
	inner := []xml.TokenReader{xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "identity"}, Attr: identity})}
	for _, f := range features {
		inner = append(inner, xmlstream.Wrap(nil, xml.StartElement{
			Name: xml.Name{Local: "feature"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: f}},
		}))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(inner...), xml.StartElement{Name: xml.Name{Space: nsInfo, Local: "query"}}), nil
}

// hasNode reports whether the query names a node.
func hasNode(req router.IQRequest) bool {
	for _, a := range req.Payload.Attr {
		if a.Name.Local == "node" && a.Value != "" {
			return true
		}
	}
	return false
}
