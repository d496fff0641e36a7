package server

import (
	"context"
	"encoding/xml"
	"sort"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"
)

// Namespaces of the server's own iq handlers.
const (
	nsPing      = "urn:xmpp:ping"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
)

// registerCore adds the handlers every server has: XEP-0199 ping and
// XEP-0030 disco#info for the server.
func registerCore(m *iqMux) error {
	ping := IQHandlerFunc(func(_ context.Context, req IQRequest) (xml.TokenReader, error) {
		if req.Stanza.Type != "get" {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.BadRequest}
		}
		return nil, nil
	})
	if err := m.handle(xml.Name{Space: nsPing, Local: "ping"}, AtServer|AtSelf, nsPing, ping); err != nil {
		return err
	}
	disco := IQHandlerFunc(func(_ context.Context, req IQRequest) (xml.TokenReader, error) {
		if req.Stanza.Type != "get" {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.BadRequest}
		}
		for _, a := range req.Payload.Attr {
			if a.Name.Local == "node" && a.Value != "" {
				return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
			}
		}
		return discoInfo(m.features), nil
	})
	return m.handle(xml.Name{Space: nsDiscoInfo, Local: "query"}, AtServer, nsDiscoInfo, disco)
}

// discoInfo is the server's disco#info answer: identity server/im and
// the registered features, sorted.
func discoInfo(features []string) xml.TokenReader {
	fs := append([]string(nil), features...)
	sort.Strings(fs)
	inner := []xml.TokenReader{xmlstream.Wrap(nil, xml.StartElement{
		Name: xml.Name{Local: "identity"},
		Attr: []xml.Attr{
			{Name: xml.Name{Local: "category"}, Value: "server"},
			{Name: xml.Name{Local: "type"}, Value: "im"},
			{Name: xml.Name{Local: "name"}, Value: "ottr"},
		},
	})}
	for _, f := range fs {
		inner = append(inner, xmlstream.Wrap(nil, xml.StartElement{
			Name: xml.Name{Local: "feature"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: f}},
		}))
	}
	return xmlstream.Wrap(xmlstream.MultiReader(inner...), xml.StartElement{Name: xml.Name{Space: nsDiscoInfo, Local: "query"}})
}
