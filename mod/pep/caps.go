package pep

import (
	"bytes"
	"encoding/xml"
	"strings"
	"sync"
	"time"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/caps"
	"ottr.im/ottr/internal/randid"
	"ottr.im/ottr/router"
)

// Entity capabilities (XEP-0115): which nodes each available session
// wants notifications of (its +notify features). The server reads <c/>
// from available presence; for a ver it does not know it asks the
// session's disco#info at node#ver, from the session's host. A ver and
// its features are remembered for every session only when the answer
// hashes to the ver with SHA-1 (§5.4); an answer that does not is the
// session's own claim about itself and serves only that session. The
// remembered vers and the queries awaiting an answer are bounded.

const (
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	// queryTimeout is how long a query awaits its answer before its
	// place may be taken.
	queryTimeout = 30 * time.Second
	// maxNotify bounds the +notify features kept of one ver.
	maxNotify = 256
)

// capsTracker holds the sessions' wanted nodes and the ver cache.
type capsTracker struct {
	m *Module

	mu       sync.Mutex
	sessions map[router.Target]*capsSession
	cache    map[string]map[string]bool // verified SHA-1 ver -> nodes
	order    []string                   // cache keys, oldest first
	pending  map[string]*capsQuery      // iq id -> query
}

// capsSession is what one available session advertised.
type capsSession struct {
	ver   string          // the <c/> hash and ver, "" without one
	nodes map[string]bool // those of the last ver whose features are known
	query string          // the id of its query awaiting an answer, if any
}

// capsQuery is one disco#info query awaiting its answer.
type capsQuery struct {
	target router.Target
	key    string // hash + " " + ver
	hash   string
	ver    string
	sent   time.Time
}

func newCapsTracker(m *Module) *capsTracker {
	return &capsTracker{
		m:        m,
		sessions: make(map[router.Target]*capsSession),
		cache:    make(map[string]map[string]bool),
		pending:  make(map[string]*capsQuery),
	}
}

// wants reports whether t's capabilities hold node+notify.
func (c *capsTracker) wants(t router.Target, node string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[t]
	return s != nil && s.nodes[node]
}

// notifyNodes returns a copy of the nodes t wants.
func (c *capsTracker) notifyNodes(t router.Target) map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[t]
	if s == nil {
		return nil
	}
	out := make(map[string]bool, len(s.nodes))
	for n := range s.nodes {
		out[n] = true
	}
	return out
}

// parseC returns the hash, node and ver of the caps element in st.
func parseC(st *element.Stanza) (hash, node, ver string, ok bool) {
	c, found := st.Child(caps.NS, "c")
	if !found {
		return "", "", "", false
	}
	for _, a := range c.Attr {
		switch a.Name.Local {
		case "hash":
			hash = a.Value
		case "node":
			node = a.Value
		case "ver":
			ver = a.Value
		}
	}
	// Legacy caps (no hash) name no features the server could check.
	return hash, node, ver, hash != "" && ver != "" && len(ver) <= 256 && len(node) <= 1024
}

// presence reads the capabilities of a session's presence broadcast
// (PresenceBroadcast).
func (c *capsTracker) presence(ev *router.EventData) bool {
	t, st := ev.Target, ev.Stanza
	if st.Type != "" {
		c.forget(t)
		return false
	}
	hash, node, ver, ok := parseC(st)
	key := ""
	if ok {
		key = hash + " " + ver
	}
	c.mu.Lock()
	s := c.sessions[t]
	if s == nil {
		s = &capsSession{}
		c.sessions[t] = s
	} else if s.ver == key && (s.nodes != nil || key != "") {
		c.mu.Unlock()
		return false // nothing new (or its query is out)
	}
	s.ver = key
	if !ok {
		s.nodes = map[string]bool{}
		c.mu.Unlock()
		return false
	}
	if nodes, hit := c.cache[key]; hit {
		added := c.setNodes(s, nodes)
		c.mu.Unlock()
		c.m.sendAllLast(ev.Ctx, t, added)
		return false
	}
	id, sent := c.startQuery(t, key, hash, ver)
	if !sent {
		s.ver = "" // the next presence asks again
	}
	c.mu.Unlock()
	if !sent {
		c.m.logger.Warn("too many capability queries awaiting an answer; a session gets no notifications until its next presence", "jid", t.JID().String())
		return false
	}
	iq, err := element.New("iq", "get", t.JID().Domain(), t.JID(), id,
		build(xml.Name{Space: nsDiscoInfo, Local: "query"}, attrs("node", node+"#"+ver)))
	if err != nil {
		c.m.logger.Error("building a capability query failed", "err", err)
		return false
	}
	c.m.core.Deliver(t, iq)
	return false
}

// setNodes gives s the nodes and returns those it did not want before.
// The caller holds c.mu.
func (c *capsTracker) setNodes(s *capsSession, nodes map[string]bool) map[string]bool {
	added := map[string]bool{}
	for n := range nodes {
		if !s.nodes[n] {
			added[n] = true
		}
	}
	s.nodes = nodes
	return added
}

// startQuery records a query for t's ver unless too many await an
// answer. A session has at most one query out: a new one replaces its
// older one (whose answer no longer matters), so that one session
// changing its ver cannot fill the table for everyone. The caller holds
// c.mu.
func (c *capsTracker) startQuery(t router.Target, key, hash, ver string) (string, bool) {
	now := c.m.opts.Now()
	s := c.sessions[t]
	if s != nil && s.query != "" {
		delete(c.pending, s.query)
		s.query = ""
	}
	if len(c.pending) >= c.m.opts.CapsQueries {
		for id, q := range c.pending {
			if now.Sub(q.sent) > queryTimeout {
				delete(c.pending, id)
			}
		}
		if len(c.pending) >= c.m.opts.CapsQueries {
			return "", false
		}
	}
	id := "caps-" + randid.New()
	c.pending[id] = &capsQuery{target: t, key: key, hash: hash, ver: ver, sent: now}
	if s != nil {
		s.query = id
	}
	return id, true
}

// response takes the answer to a capability query (IQResponse).
func (c *capsTracker) response(ev *router.EventData) bool {
	st := ev.Stanza
	c.mu.Lock()
	q := c.pending[st.ID]
	if q == nil || ev.From != q.target || !st.From.Equal(q.target.JID()) {
		c.mu.Unlock()
		return false
	}
	delete(c.pending, st.ID)
	c.mu.Unlock()
	nodes, verified := map[string]bool{}, false
	if st.Type == "result" {
		if info, err := parseInfo(st); err == nil {
			nodes = notifyNodes(info.Features)
			verified = q.hash == "sha-1" && info.Ver() == q.ver
		} else {
			c.m.logger.Debug("a capability answer was refused", "jid", st.From.String(), "err", err)
		}
	}
	c.mu.Lock()
	if verified {
		c.remember(q.key, nodes)
	}
	s := c.sessions[q.target]
	if s == nil || s.ver != q.key {
		c.mu.Unlock()
		return true // gone, or advertises another ver by now
	}
	added := c.setNodes(s, nodes)
	c.mu.Unlock()
	c.m.sendAllLast(ev.Ctx, q.target, added)
	return true
}

// remember caches a verified ver, forgetting the oldest beyond the
// bound. The caller holds c.mu.
func (c *capsTracker) remember(key string, nodes map[string]bool) {
	if _, ok := c.cache[key]; ok {
		return
	}
	for len(c.order) >= c.m.opts.CapsCache {
		delete(c.cache, c.order[0])
		c.order = c.order[1:]
	}
	c.cache[key] = nodes
	c.order = append(c.order, key)
}

// parseInfo reads the disco#info result st carries.
func parseInfo(st *element.Stanza) (caps.Info, error) {
	b, err := element.EncodeTokens(st.PayloadTokens())
	if err != nil {
		return caps.Info{}, err
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if err != nil {
			return caps.Info{}, err
		}
		if start, ok := tok.(xml.StartElement); ok {
			return caps.Parse(d, start)
		}
	}
}

// notifyNodes returns the nodes of the +notify features, at most
// maxNotify of them.
func notifyNodes(features []string) map[string]bool {
	nodes := map[string]bool{}
	for _, f := range features {
		if n, ok := strings.CutSuffix(f, "+notify"); ok && n != "" && len(nodes) < maxNotify {
			nodes[n] = true
		}
	}
	return nodes
}

// forget drops what is known of t: it went unavailable.
func (c *capsTracker) forget(t router.Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sessions, t)
	for id, q := range c.pending {
		if q.target == t {
			delete(c.pending, id)
		}
	}
}

// unbound forgets a session that ended (SessionUnbound).
func (c *capsTracker) unbound(ev *router.EventData) bool {
	c.forget(ev.Target)
	return false
}
