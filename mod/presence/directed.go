package presence

import (
	"context"
	"slices"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/router"
)

// directedPresence sends available or unavailable presence from session
// t to one local entity and remembers it, so that the entity learns when
// the session goes offline (RFC 6121 §4.6). A session remembers at most
// Options.DirectedMax entities: available presence to one more is refused
// with <resource-constraint/> and not sent, so that nobody is left seeing
// the session online after it left (security review #3). Unavailable
// presence to an entity frees its place.
func (m *Module) directedPresence(ctx context.Context, t router.Target, st *element.Stanza) {
	if !m.core.Admit(ctx, t, st, st.To) {
		return
	}
	key := st.To.String()
	full := false
	switch {
	case st.Type == "" && slices.Contains(m.core.Available(t.JID().Bare(), false), t):
		m.mu.Lock()
		d := m.directed[t]
		_, known := d[key]
		switch {
		case known:
		case len(d) >= m.directedMax:
			full = true
		default:
			if d == nil {
				d = make(map[string]jid.JID)
				m.directed[t] = d
			}
			d[key] = st.To
		}
		m.mu.Unlock()
		// Unbound meanwhile: sessionUnbound may have run before the
		// record was made.
		if m.core.Session(t.JID()) != t {
			m.takeDirected(t)
		}
	case st.Type == "unavailable":
		m.mu.Lock()
		if d := m.directed[t]; d != nil {
			delete(d, key)
			if len(d) == 0 {
				delete(m.directed, t)
			}
		}
		m.mu.Unlock()
	}
	if full {
		m.core.Bounce(t, st, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint})
		return
	}
	m.route(ctx, t, st)
}

// takeDirected returns and forgets the entities session t sent directed
// presence to.
func (m *Module) takeDirected(t router.Target) []jid.JID {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.directed[t]
	delete(m.directed, t)
	out := make([]jid.JID, 0, len(d))
	for _, j := range d {
		out = append(out, j)
	}
	return out
}

// blockListChanged forgets the directed presence of the user's sessions
// to entities the user blocks now, and adds those entities, by bare JID,
// to the audience of the user's unavailable presence (XEP-0191 §3.3).
func (m *Module) blockListChanged(ev *router.EventData) bool {
	type record struct {
		t   router.Target
		key string
		to  jid.JID
	}
	var records []record
	sessions := m.core.Resources(ev.To)
	m.mu.Lock()
	for _, t := range sessions {
		for k, j := range m.directed[t] {
			records = append(records, record{t, k, j})
		}
	}
	m.mu.Unlock()
	// The block check may read storage: not under m.mu.
	var blocked []record
	for _, rec := range records {
		if ev.Blocked(rec.to) {
			blocked = append(blocked, rec)
			ev.Audience[rec.to.Bare().String()] = rec.to.Bare()
		}
	}
	m.mu.Lock()
	for _, rec := range blocked {
		if d := m.directed[rec.t]; d != nil {
			delete(d, rec.key)
			if len(d) == 0 {
				delete(m.directed, rec.t)
			}
		}
	}
	m.mu.Unlock()
	return false
}

// DirectedPresences returns how many entities the session bound to full
// remembers having sent directed presence to (for tests and metrics).
func (m *Module) DirectedPresences(full jid.JID) int {
	t := m.core.Session(full)
	if t == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.directed[t])
}
