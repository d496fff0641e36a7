// Package ping is XEP-0199, XMPP ping: the server answers urn:xmpp:ping
// addressed to it or to the user's own account with an empty result. It
// adds no hooks and keeps nothing.
package ping

import (
	"context"
	"encoding/xml"
	"fmt"

	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/router"
)

const ns = "urn:xmpp:ping"

// Register adds the ping handler to core.
func Register(core *router.Router) error {
	h := router.IQHandlerFunc(func(_ context.Context, req router.IQRequest) (xml.TokenReader, error) {
		if req.Stanza.Type != "get" {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.BadRequest}
		}
		return nil, nil
	})
	if err := core.HandleIQ(xml.Name{Space: ns, Local: "ping"}, router.AtServer|router.AtSelf, ns, h); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}
