// Package entitytime is XEP-0202, entity time: the server answers
// urn:xmpp:time with its clock in UTC. It adds no hooks and keeps
// nothing.
package entitytime

import (
	"context"
	"encoding/xml"
	"fmt"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
)

const ns = "urn:xmpp:time"

// Options configure the module.
type Options struct {
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Register adds the entity time handler to core, for requests to the
// server.
func Register(core *router.Router, opts Options) error {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	h := router.IQHandlerFunc(func(_ context.Context, req router.IQRequest) (xml.TokenReader, error) {
		if req.Stanza.Type != "get" {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.BadRequest}
		}
		return xmlstream.Wrap(xmlstream.MultiReader(
			element.Text("tzo", "+00:00"),
			element.Text("utc", now().UTC().Format("2006-01-02T15:04:05Z")),
		), xml.StartElement{Name: xml.Name{Space: ns, Local: "time"}}), nil
	})
	if err := core.HandleIQ(xml.Name{Space: ns, Local: "time"}, router.AtServer, ns, h); err != nil {
		return fmt.Errorf("entitytime: %w", err)
	}
	return nil
}
