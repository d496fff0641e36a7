// Package offline is XEP-0160, offline messages: a chat or normal
// message for an account with no available resource is stored, within the
// account's quota, and delivered with an XEP-0203 delay stamp when a
// session of the account sends initial presence with a non-negative
// priority.
//
// Hooks:
//   - MessageOffline (0): stores the message and stops the chain; a quota
//     reached is answered with resource-constraint, a storage failure with
//     internal-server-error. With offline storage off (MaxMessages 0) or
//     no such account it does not stop: the core answers
//     service-unavailable.
//   - PresenceInitial (0): priority >= 0 delivers the stored messages in
//     the background, paced by the session's writer, oldest first;
//     messages from senders the user blocked since are dropped (the core's
//     StanzaIn decides). Only messages written to the socket are deleted.
//
// Store: StoreOffline, OfflinePage, DeleteOffline.
package offline

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

const nsDelay = "urn:xmpp:delay"

// Store holds messages for users with no available resource.
type Store interface {
	// StoreOffline appends a message unless that breaks q (count of
	// messages, bytes of their stanzas), in which case it stores nothing
	// and returns an error wrapping storage.ErrQuota. The check is part
	// of the insert's transaction.
	StoreOffline(ctx context.Context, host, user string, stanza []byte, stored time.Time, q storage.Quota) error
	// OfflinePage returns the user's oldest messages with an ID above
	// after, at most maxCount of them and maxBytes of stanzas together
	// (but at least one, if there is one).
	OfflinePage(ctx context.Context, host, user string, after int64, maxCount int, maxBytes int64) ([]storage.OfflineMessage, error)
	// DeleteOffline removes messages by id (after they were delivered).
	DeleteOffline(ctx context.Context, host, user string, ids []int64) error
}

// The defaults of Options' zero values (config's defaults too).
const (
	// DefaultMaxBytes bounds one account's stored messages together.
	DefaultMaxBytes = 4 << 20
	// DefaultSendQueue and DefaultSendQueueBytes are the sessions' send
	// queue bounds.
	DefaultSendQueue      = 1024
	DefaultSendQueueBytes = 4 << 20
)

// Options are the module's limits.
type Options struct {
	// MaxMessages is the most messages stored for one account
	// (offline_messages); 0 turns offline storage off.
	MaxMessages int
	// MaxBytes bounds the stanzas stored for one account together
	// (offline_bytes); 0 is DefaultMaxBytes.
	MaxBytes int
	// SendQueue and SendQueueBytes are the sessions' send queue bounds:
	// delivery keeps at most half of each in flight. 0 is
	// DefaultSendQueue, DefaultSendQueueBytes.
	SendQueue, SendQueueBytes int
	// Now is the clock of the stored stamps; nil is time.Now.
	Now func() time.Time
}

// Module is the offline message store of one routing core.
type Module struct {
	core   *router.Router
	store  Store
	opts   Options
	logger *slog.Logger

	// background counts the deliveries under way, which Wait lets
	// finish before the store closes.
	background sync.WaitGroup

	// turns holds, per bare JID, the delivery under way (see turn).
	turnsMu sync.Mutex
	turns   map[string]chan struct{}
}

// Register adds offline storage and delivery to core.
func Register(core *router.Router, store Store, opts Options) (*Module, error) {
	defaults.Positive(&opts.MaxBytes, DefaultMaxBytes)
	defaults.Positive(&opts.SendQueue, DefaultSendQueue)
	defaults.Positive(&opts.SendQueueBytes, DefaultSendQueueBytes)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Module{
		core:   core,
		store:  store,
		opts:   opts,
		logger: core.Logger().With("module", "offline"),
		turns:  make(map[string]chan struct{}),
	}
	if err := core.Hooks("offline",
		router.HookSpec{Event: router.MessageOffline, Priority: 0, Fn: m.messageOffline},
		router.HookSpec{Event: router.PresenceInitial, Priority: 0, Fn: m.presenceInitial},
	); err != nil {
		return nil, err
	}
	if opts.MaxMessages > 0 {
		// XEP-0160 §5: the server's disco#info says messages are stored.
		if err := core.AddFeature("msgoffline"); err != nil {
			return nil, fmt.Errorf("offline: %w", err)
		}
	}
	return m, nil
}

// Wait blocks until the deliveries under way have finished: the server
// calls it at shutdown, after the sessions ended and before it closes the
// store.
func (m *Module) Wait() { m.background.Wait() }

// messageOffline stores a message for an account with no available
// resource (XEP-0160). An account that does not exist is left to the
// core (service-unavailable); a message that would take the account past
// its quota (offline_messages, offline_bytes: checked by the store in the
// insert's transaction) gets resource-constraint.
func (m *Module) messageOffline(ev *router.EventData) bool {
	st := ev.Stanza
	owner := st.To.Bare()
	if m.opts.MaxMessages == 0 || !m.core.AccountExists(ev.Ctx, owner) {
		return false
	}
	b, err := st.Marshal()
	if err != nil {
		m.logger.Error("encoding an offline message failed", "err", err)
		m.core.Bounce(ev.From, st, stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
		return true
	}
	q := storage.Quota{Count: m.opts.MaxMessages, Bytes: int64(m.opts.MaxBytes)}
	err = m.store.StoreOffline(ev.Ctx, owner.Domainpart(), owner.Localpart(), b, m.opts.Now(), q)
	switch {
	case errors.Is(err, storage.ErrQuota):
		m.core.Bounce(ev.From, st, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
	case err != nil:
		m.logger.Error("storing an offline message failed", "to", owner.String(), "err", err)
		m.core.Bounce(ev.From, st, stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
	default:
		// A resource may have come online between the core finding none
		// and the insert: its initial delivery may have read the queue
		// before this message was in it. One more delivery (after that
		// one, in the user's turn) takes it; otherwise it would wait for
		// the next login.
		if best := m.core.Best(owner); len(best) > 0 {
			m.deliver(context.WithoutCancel(ev.Ctx), best[0])
		}
	}
	return true
}

// presenceInitial delivers the stored messages to a session that sent
// initial presence with a non-negative priority (RFC 6121 §8.5.2.1.1 and
// XEP-0160 §4: negative priority means it wants none).
func (m *Module) presenceInitial(ev *router.EventData) bool {
	// The presence module refused a priority that does not parse.
	prio, _ := strconv.Atoi(strings.TrimSpace(ev.Stanza.ChildText(element.NSClient, "priority")))
	if prio >= 0 {
		m.deliver(ev.Ctx, ev.Target)
	}
	return false
}

// delayStamp is the XEP-0203 element for a message stored at t.
func delayStamp(from jid.JID, t time.Time) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Token(xml.CharData("Offline Storage")), xml.StartElement{
		Name: xml.Name{Space: nsDelay, Local: "delay"},
		Attr: []xml.Attr{
			{Name: xml.Name{Local: "from"}, Value: from.String()},
			{Name: xml.Name{Local: "stamp"}, Value: t.UTC().Format("2006-01-02T15:04:05.000Z")},
		},
	})
}
