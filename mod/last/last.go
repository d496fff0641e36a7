// Package last is the last activity module (XEP-0012): the server's
// uptime, and how long ago an account was last online, for the account
// itself and its subscribers.
//
// It registers the jabber:iq:last query (AtServer, AtSelf and AtAccount,
// disco feature jabber:iq:last; get only) and hooks PresenceBroadcast
// (0): when a session goes unavailable and its user has no available
// resource left, the time and status text are recorded.
//
// Its Store keeps the last logout of each user, and reads roster entries
// to tell subscribers from others.
package last

import (
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// nsLast is the namespace of XEP-0012.
const nsLast = "jabber:iq:last"

// Store keeps when each user was last seen. Users are identified by host
// and nodeprepped username, contacts by their bare JID string.
type Store interface {
	// SetLastActivity records the time and status text of the user's last
	// logout.
	SetLastActivity(ctx context.Context, host, user string, at time.Time, status string) error
	// LastActivity returns it; ok is false when the user never logged out.
	LastActivity(ctx context.Context, host, user string) (at time.Time, status string, ok bool, err error)
	// RosterItem returns one roster entry; ok is false when there is none.
	RosterItem(ctx context.Context, host, user, contact string) (item storage.RosterItem, ok bool, err error)
}

// Options configure the module.
type Options struct {
	// Started is when the server started, for its uptime.
	Started time.Time
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// module answers last activity requests and records logouts.
type module struct {
	core    *router.Router
	store   Store
	started time.Time
	now     func() time.Time
	logger  *slog.Logger
}

// Register adds the last activity module to core: its iq handler and
// hook.
func Register(core *router.Router, store Store, opts Options) error {
	m := &module{core: core, store: store, started: opts.Started, now: opts.Now, logger: core.Logger().With("module", "last")}
	if m.now == nil {
		m.now = time.Now
	}
	name := xml.Name{Space: nsLast, Local: "query"}
	if err := core.HandleIQ(name, router.AtServer|router.AtSelf|router.AtAccount, nsLast, router.IQHandlerFunc(m.handleLast)); err != nil {
		return fmt.Errorf("last: %w", err)
	}
	if err := core.Hook(router.PresenceBroadcast, 0, "last", m.presenceBroadcast); err != nil {
		return fmt.Errorf("last: %w", err)
	}
	return nil
}

// handleLast answers XEP-0012: the server's uptime, or how long ago an
// account was last online (0 while it is), for the account itself and
// its subscribers.
func (m *module) handleLast(ctx context.Context, req router.IQRequest) (xml.TokenReader, error) {
	if req.Stanza.Type != "get" {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.BadRequest}
	}
	if req.To.Localpart() == "" {
		return seconds(m.now().Sub(m.started), ""), nil
	}
	account := req.To.Bare()
	if requester := req.From.Bare(); !account.Equal(requester) {
		item, ok, err := m.store.RosterItem(ctx, account.Domainpart(), account.Localpart(), requester.String())
		if err != nil {
			m.logger.Error("reading a roster item failed", "jid", account.String(), "contact", requester.String(), "err", err)
		}
		if err != nil || !ok || !item.From {
			return nil, stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
		}
	}
	if len(m.core.Available(account, false)) > 0 {
		return seconds(0, ""), nil
	}
	at, status, ok, err := m.store.LastActivity(ctx, account.Domainpart(), account.Localpart())
	if err != nil {
		return nil, fmt.Errorf("reading the last activity of %s: %w", account, err)
	}
	if !ok {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	}
	return seconds(m.now().Sub(at), status), nil
}

// seconds is a last activity <query/> of d, in whole seconds, with text.
func seconds(d time.Duration, text string) xml.TokenReader {
	var inner xml.TokenReader
	if text != "" {
		inner = xmlstream.Token(xml.CharData(text))
	}
	return xmlstream.Wrap(inner, xml.StartElement{
		Name: xml.Name{Space: nsLast, Local: "query"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "seconds"}, Value: strconv.FormatInt(int64(d/time.Second), 10)}},
	})
}

// presenceBroadcast remembers when the user's last available resource
// went unavailable, before anyone learns of it (so that they can ask).
func (m *module) presenceBroadcast(ev *router.EventData) bool {
	if ev.Stanza.Type != "unavailable" {
		return false
	}
	user := ev.Target.JID().Bare()
	if len(m.core.Available(user, false)) > 0 {
		return false
	}
	status := ev.Stanza.ChildText(element.NSClient, "status")
	if err := m.store.SetLastActivity(ev.Ctx, user.Domainpart(), user.Localpart(), m.now(), status); err != nil {
		m.logger.Error("recording last activity failed", "jid", user.String(), "err", err)
	}
	return false
}
