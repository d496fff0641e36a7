// Package version is XEP-0092, software version: the server answers
// jabber:iq:version with its name and version. It adds no hooks and
// keeps nothing.
package version

import (
	"context"
	"encoding/xml"
	"fmt"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
)

const ns = "jabber:iq:version"

// Options say what the server reports.
type Options struct {
	// Name and Version are the software's name and version.
	Name, Version string
}

// Register adds the software version handler to core, for requests to
// the server.
func Register(core *router.Router, opts Options) error {
	h := router.IQHandlerFunc(func(_ context.Context, req router.IQRequest) (xml.TokenReader, error) {
		if req.Stanza.Type != "get" {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.BadRequest}
		}
		return xmlstream.Wrap(xmlstream.MultiReader(
			element.Text("name", opts.Name),
			element.Text("version", opts.Version),
		), xml.StartElement{Name: xml.Name{Space: ns, Local: "query"}}), nil
	})
	if err := core.HandleIQ(xml.Name{Space: ns, Local: "query"}, router.AtServer, ns, h); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	return nil
}
