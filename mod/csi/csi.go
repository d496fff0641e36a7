// Package csi is XEP-0352, Client State Indication (urn:xmpp:csi:0):
// while a client says it is inactive (<inactive/>, a top-level element
// the transport hands to SetActive), what is not urgent for it is held
// back instead of waking its radio:
//
//   - presence updates (available and unavailable) are held and
//     collapsed: only the latest from each full JID is kept;
//   - other unimportant stanzas (chat states, receipts and markers
//     without a body, headlines without one, pubsub notifications) are
//     held in order;
//   - what matters goes through at once, after everything held (so that
//     the order the client sees is the order things happened): messages
//     with a body or a subject, carbons of such messages, MUC and direct
//     invitations, every iq, every error, subscription requests and
//     answers.
//
// Everything held is delivered when the client says <active/> again, when
// its stream is resumed (XEP-0198: a stream starts active, so the
// transport's adapter calls SetActive then too) and when the session ends. What one session holds is bounded
// (Options.MaxStanzas, Options.MaxBytes): past the bound it is all
// delivered instead of growing.
//
// Hooks:
//   - StanzaDeliver (0): holds back or lets through, for inactive
//     sessions only (an active one costs a map lookup).
//   - SessionUnbound (-100): delivers what was held and forgets the
//     session.
//
// The transport announces the stream feature <csi xmlns='urn:xmpp:csi:0'/>
// after authentication. It has no store.
package csi

import (
	"encoding/xml"
	"sync"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/router"
)

// NS is XEP-0352's namespace: its stream feature and elements.
const NS = "urn:xmpp:csi:0"

// Default bounds of what one inactive session holds, when Options leave
// them 0. They are well under the default send queue (1024 stanzas, 4
// MiB), which a flush goes into at once.
const (
	DefaultMaxStanzas = 256
	DefaultMaxBytes   = 256 << 10
)

// Options bound what the module holds.
type Options struct {
	// MaxStanzas is the most stanzas held for one inactive session; 0
	// is DefaultMaxStanzas.
	MaxStanzas int
	// MaxBytes is the most bytes (as read, or as encoded for stanzas
	// the server built) held for one inactive session; 0 is
	// DefaultMaxBytes.
	MaxBytes int
}

// Module is the client state indication module registered with one core.
type Module struct {
	core       *router.Router
	maxStanzas int
	maxBytes   int

	// inactive maps each inactive session (router.Target) to what it is
	// held back (*held). A sync.Map: every delivery looks here, and
	// sessions come and go far less often.
	inactive sync.Map
}

// held is what one inactive session is held back. Its mutex orders the
// deliveries to the session while it is inactive: what is held and what
// goes through are queued under it.
type held struct {
	mu sync.Mutex
	// done is set, under mu, once the session turned active or ended and
	// all was delivered: a delivery that found the entry just before
	// goes straight through.
	done bool
	// stanzas in the order they came; nil where a presence was replaced
	// by a later one from the same full JID.
	stanzas []*element.Stanza
	// presence is the index in stanzas of the presence held for each
	// full JID.
	presence map[string]int
	count    int // non-nil entries in stanzas
	bytes    int
}

// Register adds the module's hooks to core.
func Register(core *router.Router, opts Options) (*Module, error) {
	defaults.Positive(&opts.MaxStanzas, DefaultMaxStanzas)
	defaults.Positive(&opts.MaxBytes, DefaultMaxBytes)
	m := &Module{core: core, maxStanzas: opts.MaxStanzas, maxBytes: opts.MaxBytes}
	if err := core.Hooks("csi",
		router.HookSpec{Event: router.StanzaDeliver, Priority: 0, Fn: m.stanzaDeliver},
		router.HookSpec{Event: router.SessionUnbound, Priority: -100, Fn: m.sessionUnbound},
	); err != nil {
		return nil, err
	}
	return m, nil
}

// SetActive records what the client of t said: <active/> (true) delivers
// what was held and ends holding; <inactive/> (false) starts holding.
// Saying the same twice changes nothing. A target that is not bound (or
// was replaced meanwhile) is not recorded.
func (m *Module) SetActive(t router.Target, active bool) {
	if active {
		m.end(t)
		return
	}
	if _, loaded := m.inactive.LoadOrStore(t, &held{}); loaded {
		return
	}
	// Checked after the record: a SessionUnbound for t either ran
	// before (t is not bound now) or runs after and ends it.
	if m.core.Session(t.JID()) != t {
		m.end(t)
	}
}

// Active reports whether t is active (the state every session starts
// in).
func (m *Module) Active(t router.Target) bool {
	_, inactive := m.inactive.Load(t)
	return !inactive
}

// end delivers what t was held back and forgets it. The entry goes only
// after the delivery, so that nothing overtakes what was held.
func (m *Module) end(t router.Target) {
	v, ok := m.inactive.Load(t)
	if !ok {
		return
	}
	q := v.(*held)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.done {
		return
	}
	q.flush(t)
	q.done = true
	m.inactive.Delete(t)
}

func (m *Module) stanzaDeliver(ev *router.EventData) bool {
	v, ok := m.inactive.Load(ev.Target)
	if !ok {
		return false
	}
	t, st, q := ev.Target, ev.Stanza, v.(*held)
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.done:
		return false
	case important(st):
		q.flush(t)
		t.Deliver(st)
		return true
	}
	q.add(st)
	if q.count > m.maxStanzas || q.bytes > m.maxBytes {
		q.flush(t)
	}
	return true
}

func (m *Module) sessionUnbound(ev *router.EventData) bool {
	m.end(ev.Target)
	return false
}

// add holds st, replacing the presence held from the same full JID.
func (q *held) add(st *element.Stanza) {
	if collapsible(st) {
		key := st.From.String()
		if i, ok := q.presence[key]; ok {
			q.bytes -= size(q.stanzas[i])
			q.stanzas[i] = nil
			q.count--
		}
		if q.presence == nil {
			q.presence = make(map[string]int)
		}
		q.presence[key] = len(q.stanzas)
	}
	q.stanzas = append(q.stanzas, st)
	q.count++
	q.bytes += size(st)
	if len(q.stanzas) > 2*q.count+16 {
		q.compact()
	}
}

// compact drops the replaced entries and renumbers the presence index.
func (q *held) compact() {
	live := q.stanzas[:0]
	for _, st := range q.stanzas {
		if st == nil {
			continue
		}
		if collapsible(st) {
			q.presence[st.From.String()] = len(live)
		}
		live = append(live, st)
	}
	clear(q.stanzas[len(live):])
	q.stanzas = live
}

// flush delivers what q holds to t, in order, and empties q. The caller
// holds q.mu.
func (q *held) flush(t router.Target) {
	for _, st := range q.stanzas {
		if st != nil {
			t.Deliver(st)
		}
	}
	q.stanzas, q.presence, q.count, q.bytes = nil, nil, 0, 0
}

// size is about how many bytes st takes.
func size(st *element.Stanza) int {
	if st.Size > 0 {
		return st.Size
	}
	return len(st.AppendXML(nil))
}

// collapsible reports whether st is a presence update that a later one
// from the same full JID makes stale.
func collapsible(st *element.Stanza) bool {
	return st.Name == "presence" && (st.Type == "" || st.Type == "unavailable") && !st.From.Equal(jid.JID{})
}

// Namespaces of payloads that make a message important without a body.
const (
	nsCarbons    = "urn:xmpp:carbons:2"
	nsForward    = "urn:xmpp:forward:0"
	nsMUCUser    = "http://jabber.org/protocol/muc#user"
	nsConference = "jabber:x:conference"
)

// important reports whether st goes through at once.
func important(st *element.Stanza) bool {
	switch {
	case st.Type == "error":
		return true
	case st.Name == "presence":
		// Subscription requests and answers wait for the user.
		return !collapsible(st)
	case st.Name != "message":
		return true
	}
	// A copy: the stanza may be on its way to other sessions, whose
	// writers read it; parsing its children on the copy leaves it
	// untouched.
	return importantMessage(st.Clone().Tokens(), false)
}

// importantMessage reports whether the children of a message make it
// important: a body or a subject, an invitation, or a carbon (when
// carbon is false) of an important message.
func importantMessage(toks []xml.Token, carbon bool) bool {
	depth := 0
	for i, tok := range toks {
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth != 1 {
				continue
			}
			switch t.Name {
			case xml.Name{Space: element.NSClient, Local: "body"}, xml.Name{Local: "body"},
				xml.Name{Space: element.NSClient, Local: "subject"}, xml.Name{Local: "subject"},
				xml.Name{Space: nsConference, Local: "x"}:
				return true
			case xml.Name{Space: nsMUCUser, Local: "x"}:
				if hasChild(toks[i+1:], nsMUCUser, "invite") {
					return true
				}
			case xml.Name{Space: nsCarbons, Local: "sent"}, xml.Name{Space: nsCarbons, Local: "received"}:
				if !carbon && importantMessage(forwarded(toks[i+1:]), true) {
					return true
				}
			}
		case xml.EndElement:
			depth--
		}
	}
	return false
}

// hasChild reports whether the element whose children start toks has a
// direct child {space}local.
func hasChild(toks []xml.Token, space, local string) bool {
	depth := 0
	for _, tok := range toks {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name.Space == space && t.Name.Local == local {
				return true
			}
			depth++
		case xml.EndElement:
			if depth == 0 {
				return false
			}
			depth--
		}
	}
	return false
}

// forwarded returns the children of the message forwarded in a carbon
// whose children start toks (<forwarded><message>…</message></forwarded>),
// nil when there is none.
func forwarded(toks []xml.Token) []xml.Token {
	// Depth relative to the carbon's children: 1 in <forwarded/>, 2 in
	// its <message/>.
	depth, start := 0, -1
	for i, tok := range toks {
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1 && t.Name != xml.Name{Space: nsForward, Local: "forwarded"}:
				return nil
			case depth == 2 && start < 0 && t.Name.Local == "message" && (t.Name.Space == element.NSClient || t.Name.Space == ""):
				start = i + 1
			}
		case xml.EndElement:
			if depth == 2 && start >= 0 {
				return toks[start:i]
			}
			depth--
			if depth < 0 {
				return nil
			}
		}
	}
	return nil
}
