package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
)

// The per-user store quotas, over real sockets (security review #6):
// every path that writes a store checks its count and its bytes.

// TestRosterQuotaOutboundSubscriptions: a user who sends subscription
// requests to a thousand distinct JIDs keeps at most roster_items
// entries; each request beyond gets <resource-constraint/>.
func TestRosterQuotaOutboundSubscriptions(t *testing.T) {
	const max, n = 10, 1000
	ts := startServer(t, func(c *config.Config) { c.Limits.RosterItems = max })
	alice := ts.online(t, "alice", "a")
	for i := range n {
		alice.Send(fmt.Sprintf(`<presence to='u%d@remote.example' type='subscribe' id='s%d'/>`, i, i))
	}
	for range n - max {
		e := alice.NextNamed("presence", "error")
		if !strings.Contains(e.Inner, "resource-constraint") {
			t.Fatalf("refused subscription: %+v", e)
		}
	}
	if q := alice.Roster(""); len(q.Items) != max {
		t.Fatalf("alice's roster has %d items after %d requests, want %d", len(q.Items), n, max)
	}
	// Removing one makes room for one.
	if r := alice.IQ(`<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='u0@remote.example' subscription='remove'/></query></iq>`, "rm"); r.Type != "result" {
		t.Fatalf("remove: %+v", r)
	}
	if r := alice.IQ(`<iq type='set' id='add'><query xmlns='jabber:iq:roster'><item jid='new@remote.example'/></query></iq>`, "add"); r.Type != "result" {
		t.Fatalf("roster set after a remove: %+v", r)
	}
	if r := alice.IQ(`<iq type='set' id='full'><query xmlns='jabber:iq:roster'><item jid='more@remote.example'/></query></iq>`, "full"); r.Type != "error" || !strings.Contains(r.Inner, "resource-constraint") {
		t.Fatalf("roster set beyond the quota: %+v", r)
	}
}

// TestRosterQuotaInboundSubscriptions: requests from more distinct
// senders than roster_items leave at most roster_items pending entries;
// the senders beyond get an error presence, and the owner's approvals of
// stored requests still work while the roster is full.
func TestRosterQuotaInboundSubscriptions(t *testing.T) {
	const max, senders = 10, 25
	ts := startServer(t, func(c *config.Config) { c.Limits.RosterItems = max })
	bob := ts.online(t, "bob", "b")
	bob.Close()
	refused := 0
	for i := range senders {
		s := ts.online(t, fmt.Sprintf("s%d", i), "r")
		s.Send(`<presence to='bob@localhost' type='subscribe'><status>let me in</status></presence>`)
		s.RosterPush()
		// A ping round trip: the request was handled when it returns.
		s.IQ(`<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "p")
		for _, r := range received(s) {
			if r.Name == "presence" && r.Type == "error" {
				if r.From != "bob@localhost" || !strings.Contains(r.Inner, "resource-constraint") {
					t.Fatalf("sender %d got %+v", i, r)
				}
				refused++
			}
		}
		s.Close()
	}
	if refused != senders-max {
		t.Errorf("%d senders were refused, want %d", refused, senders-max)
	}
	bob = ts.mustLogin(t, "bob", "b")
	bob.Send(`<presence/>`)
	for range max {
		bob.NextNamed("presence", "subscribe")
	}
	bob.NoneWithin(300*time.Millisecond, func(r xmpptest.Received) bool { return r.Type == "subscribe" })
	// Approving a stored request adds no entry: allowed with a full roster.
	bob.Roster("")
	bob.Send(`<presence to='s0@localhost' type='subscribed'/>`)
	if it := bob.RosterPush(); it.JID != "s0@localhost" || it.Subscription != "from" {
		t.Fatalf("approval with a full roster: %+v", it)
	}
	// A pre-approval would add one: refused.
	bob.Send(`<presence to='stranger@localhost' type='subscribed' id='pre'/>`)
	if e := bob.NextNamed("presence", "error"); e.ID != "pre" || !strings.Contains(e.Inner, "resource-constraint") {
		t.Fatalf("pre-approval with a full roster: %+v", e)
	}
}

// received returns what c has received and not consumed yet, keeping it.
func received(c *xmpptest.Client) []xmpptest.Received {
	var out []xmpptest.Received
	c.NoneWithin(0, func(r xmpptest.Received) bool {
		out = append(out, r)
		return false
	})
	return out
}

// TestPrivateQuota: 200 private XML documents with a count limit of 5
// store 5; the total bytes are bounded too.
func TestPrivateQuota(t *testing.T) {
	const docs = 5
	ts := startServer(t, func(c *config.Config) {
		c.Limits.PrivateDocuments = docs
		c.Limits.PrivateBytes = 1024
		c.Limits.PrivateTotalBytes = 4096
	})
	alice := ts.online(t, "alice", "a")
	stored := 0
	for i := range 200 {
		id := fmt.Sprintf("p%d", i)
		r := alice.IQ(fmt.Sprintf(`<iq type='set' id='%s'><query xmlns='jabber:iq:private'><x xmlns='urn:example:%d'>v</x></query></iq>`, id, i), id)
		switch {
		case r.Type == "result":
			stored++
		case !strings.Contains(r.Inner, "resource-constraint"):
			t.Fatalf("document %d: %+v", i, r)
		}
	}
	if stored != docs {
		t.Fatalf("%d of 200 documents stored, want %d", stored, docs)
	}
	// Replacing a stored one is allowed; reading works.
	if r := alice.IQ(`<iq type='set' id='again'><query xmlns='jabber:iq:private'><x xmlns='urn:example:0'>w</x></query></iq>`, "again"); r.Type != "result" {
		t.Fatalf("replace: %+v", r)
	}
	if r := alice.IQ(`<iq type='get' id='g'><query xmlns='jabber:iq:private'><x xmlns='urn:example:0'/></query></iq>`, "g"); !strings.Contains(r.Inner, ">w<") {
		t.Fatalf("get: %+v", r)
	}
	// Bytes: four documents of about 1000 bytes fill 4096 bytes.
	bob := ts.online(t, "bob", "b")
	big := strings.Repeat("b", 950)
	stored = 0
	for i := range docs {
		id := fmt.Sprintf("b%d", i)
		r := bob.IQ(fmt.Sprintf(`<iq type='set' id='%s'><query xmlns='jabber:iq:private'><x xmlns='urn:example:%d'>%s</x></query></iq>`, id, i, big), id)
		switch {
		case r.Type == "result":
			stored++
		case !strings.Contains(r.Inner, "resource-constraint"):
			t.Fatalf("large document %d: %+v", i, r)
		}
	}
	if stored != 4 {
		t.Fatalf("%d documents of about 1000 bytes stored in 4096 bytes, want 4", stored)
	}
}

// TestBlockListQuota: a block request with more items than blocked_items
// is refused whole, and the list never grows past the limit.
func TestBlockListQuota(t *testing.T) {
	// blocked_items = 1000; a stanza of 5000 items is larger than the
	// default max_stanza_bytes as the test client writes it.
	ts := startServer(t, func(c *config.Config) { c.Limits.MaxStanzaBytes = 1 << 20 })
	alice := ts.online(t, "alice", "a")
	items := func(from, n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "<item jid='m%d@localhost'/>", from+i)
		}
		return b.String()
	}
	r := alice.IQ(`<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'>`+items(0, 5000)+`</block></iq>`, "b1")
	if r.Type != "error" || !strings.Contains(r.Inner, "not-acceptable") {
		t.Fatalf("5000 items in one request: %+v", r)
	}
	r = alice.IQ(`<iq type='get' id='l1'><blocklist xmlns='urn:xmpp:blocking'/></iq>`, "l1")
	if strings.Contains(r.Inner, "item") {
		t.Fatalf("block list after a refused request: %.200s", r.Inner)
	}
	if r := alice.IQ(`<iq type='set' id='b2'><block xmlns='urn:xmpp:blocking'>`+items(0, 999)+`</block></iq>`, "b2"); r.Type != "result" {
		t.Fatalf("999 items: %+v", r)
	}
	// Two more would pass 1000: neither is added.
	r = alice.IQ(`<iq type='set' id='b3'><block xmlns='urn:xmpp:blocking'>`+items(999, 2)+`</block></iq>`, "b3")
	if r.Type != "error" || !strings.Contains(r.Inner, "resource-constraint") {
		t.Fatalf("past the limit: %+v", r)
	}
	if r := alice.IQ(`<iq type='set' id='b4'><block xmlns='urn:xmpp:blocking'>`+items(999, 1)+items(0, 5)+`</block></iq>`, "b4"); r.Type != "result" {
		t.Fatalf("up to the limit: %+v", r)
	}
	r = alice.IQ(`<iq type='get' id='l2'><blocklist xmlns='urn:xmpp:blocking'/></iq>`, "l2")
	if n := strings.Count(r.Inner, "<item"); n != 1000 {
		t.Fatalf("block list has %d items, want 1000", n)
	}
	// The in-memory list follows the changes: m999 is blocked, m1000 not.
	m999, m1000 := ts.online(t, "m999", "m"), ts.online(t, "m1000", "m")
	m999.Send(`<message to='alice@localhost/a' type='chat' id='x'><body>blocked</body></message>`)
	if e := m999.NextNamed("message", "error"); e.ID != "x" {
		t.Fatalf("m999 got %+v", e)
	}
	m1000.Send(`<message to='alice@localhost/a' type='chat'><body>through</body></message>`)
	if m := alice.NextNamed("message", "chat"); m.Body != "through" {
		t.Fatalf("alice got %+v", m)
	}
}

// TestOfflineByteQuota: 100 messages of 250 KiB to an offline user store
// only what fits in offline_bytes; the others bounce to the sender with
// <resource-constraint/>.
func TestOfflineByteQuota(t *testing.T) {
	const quota = 1 << 20
	ts := startServer(t, func(c *config.Config) { c.Limits.OfflineBytes = quota })
	bob := ts.online(t, "bob", "b")
	bob.Close()
	alice := ts.online(t, "alice", "a")
	body := strings.Repeat("x", 250<<10)
	refused := map[string]bool{}
	for i := range 100 {
		alice.Send(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='m%d'><body>%d %s</body></message>`, i, i, body))
		// One at a time: a ping answer comes after the message's bounce.
		id := fmt.Sprintf("p%d", i)
		alice.IQ(fmt.Sprintf(`<iq type='get' id='%s' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, id), id)
		for _, r := range received(alice) {
			if r.Name == "message" && r.Type == "error" && !refused[r.ID] {
				if !strings.Contains(r.Inner, "resource-constraint") {
					t.Fatalf("bounce of %s: %.300s", r.ID, r.Inner)
				}
				refused[r.ID] = true
			}
		}
	}
	stored := 100 - len(refused)
	if stored == 0 || stored == 100 {
		t.Fatalf("%d of 100 messages of 250 KiB refused with a quota of %d bytes", len(refused), quota)
	}
	bob = ts.mustLogin(t, "bob", "b")
	bob.Send(`<presence/>`)
	total := 0
	for i := range stored {
		m := bob.NextNamed("message", "chat")
		if refused[fmt.Sprintf("m%d", i)] || !strings.HasPrefix(m.Body, fmt.Sprintf("%d ", i)) {
			t.Fatalf("offline message %d: %.20q (refused: %v)", i, m.Body, refused[fmt.Sprintf("m%d", i)])
		}
		total += len(m.Body)
	}
	bob.NoneWithin(300*time.Millisecond, func(r xmpptest.Received) bool { return r.Name == "message" })
	if total > quota {
		t.Fatalf("%d messages with %d bytes of body were stored, more than the quota of %d", stored, total, quota)
	}
}

// TestOfflineDeliveryPaced: a client that logs in to 1000 offline messages
// with a send queue of 16 gets all of them, in order, none twice, and
// stays connected; a second login finds none left.
func TestOfflineDeliveryPaced(t *testing.T) {
	const n = 1000
	ts := startServer(t, func(c *config.Config) { c.Limits.SendQueue = 16 })
	bob := ts.online(t, "bob", "b")
	bob.Close()
	alice := ts.online(t, "alice", "a")
	for i := range n {
		alice.Send(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='m%d'><body>offline %d</body></message>`, i, i))
		if i%25 == 24 {
			// A ping round trip every 25: all are stored when it
			// returns, and a slow (-race) run does not time out.
			id := fmt.Sprintf("sync%d", i)
			if r := alice.IQ(`<iq type='get' id='`+id+`' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, id); r.Type != "result" {
				t.Fatalf("ping: %+v", r)
			}
		}
	}
	for _, r := range received(alice) {
		if r.Name == "message" && r.Type == "error" {
			t.Fatalf("storing offline: %+v", r)
		}
	}
	bob = ts.mustLogin(t, "bob", "b")
	bob.Send(`<presence/>`)
	for i := range n {
		m := bob.NextNamed("message", "chat")
		if m.Body != fmt.Sprintf("offline %d", i) {
			t.Fatalf("message %d: %q", i, m.Body)
		}
	}
	bob.NoneWithin(300*time.Millisecond, func(r xmpptest.Received) bool { return r.Name == "message" })
	// Still connected.
	if r := bob.IQ(`<iq type='get' id='alive' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "alive"); r.Type != "result" {
		t.Fatalf("ping after delivery: %+v", r)
	}
	bob.Close()
	bob = ts.mustLogin(t, "bob", "b2")
	bob.Send(`<presence/>`)
	bob.NoneWithin(400*time.Millisecond, func(r xmpptest.Received) bool { return r.Name == "message" })
}

// TestOfflineTwoSessions: two sessions of a user that come online at the
// same time share the backlog: every message arrives once, in order on
// each session, and none is left.
func TestOfflineTwoSessions(t *testing.T) {
	const n = 500
	ts := startServer(t, func(c *config.Config) { c.Limits.SendQueue = 16 })
	bob := ts.online(t, "bob", "b")
	bob.Close()
	alice := ts.online(t, "alice", "a")
	for i := range n {
		alice.Send(fmt.Sprintf(`<message to='bob@localhost' type='chat'><body>%d</body></message>`, i))
		if i%25 == 24 {
			id := fmt.Sprintf("sync%d", i)
			alice.IQ(`<iq type='get' id='`+id+`' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, id)
		}
	}
	one, two := ts.mustLogin(t, "bob", "one"), ts.mustLogin(t, "bob", "two")
	one.Send(`<presence/>`)
	two.Send(`<presence/>`)
	seen := make(map[string]int)
	for _, c := range []*xmpptest.Client{one, two} {
		last := -1
		for _, r := range collect(c, 500*time.Millisecond) {
			if r.Name != "message" {
				continue
			}
			var i int
			if _, err := fmt.Sscan(r.Body, &i); err != nil || i <= last {
				t.Fatalf("%s: message %q after %d", c.JID, r.Body, last)
			}
			last = i
			seen[r.Body]++
		}
	}
	for i := range n {
		if c := seen[fmt.Sprint(i)]; c != 1 {
			t.Fatalf("message %d arrived %d times (%d distinct in all)", i, c, len(seen))
		}
	}
	three := ts.mustLogin(t, "bob", "three")
	three.Send(`<presence/>`)
	three.NoneWithin(300*time.Millisecond, func(r xmpptest.Received) bool { return r.Name == "message" })
}

// collect returns what c receives until it has been silent for quiet.
func collect(c *xmpptest.Client, quiet time.Duration) []xmpptest.Received {
	var out []xmpptest.Received
	for {
		before := len(out)
		out = out[:0]
		c.NoneWithin(quiet, func(r xmpptest.Received) bool {
			out = append(out, r)
			return false
		})
		if len(out) == before {
			return out
		}
	}
}

// TestRosterBytes: roster_bytes bounds the groups and names a user
// stores, and a subscription request with a huge status text is kept
// (for redelivery) without it, so that a few such requests cannot fill a
// roster.
func TestRosterBytes(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.RosterBytes = 16 << 10 })
	alice := ts.online(t, "alice", "a")
	groups := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "<group>%d%s</group>", i, strings.Repeat("g", 1000))
		}
		return b.String()
	}
	if r := alice.IQ(`<iq type='set' id='g1'><query xmlns='jabber:iq:roster'><item jid='a@localhost'>`+groups(10)+`</item></query></iq>`, "g1"); r.Type != "result" {
		t.Fatalf("10 KB of groups: %+v", r)
	}
	if r := alice.IQ(`<iq type='set' id='g2'><query xmlns='jabber:iq:roster'><item jid='b@localhost'>`+groups(10)+`</item></query></iq>`, "g2"); r.Type != "error" || !strings.Contains(r.Inner, "resource-constraint") {
		t.Fatalf("20 KB of groups in 16 KiB: %+v", r)
	}
	// Shrinking an entry is always allowed.
	if r := alice.IQ(`<iq type='set' id='g3'><query xmlns='jabber:iq:roster'><item jid='a@localhost'/></query></iq>`, "g3"); r.Type != "result" {
		t.Fatalf("shrinking: %+v", r)
	}

	bob := ts.online(t, "bob", "b")
	bob.Close()
	status := strings.Repeat("s", 100<<10)
	for i := range 5 {
		s := ts.online(t, fmt.Sprintf("s%d", i), "r")
		s.Send(`<presence to='bob@localhost' type='subscribe'><status>` + status + `</status></presence>`)
		s.RosterPush()
		s.IQ(`<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "p")
		for _, r := range received(s) {
			if r.Type == "error" {
				t.Fatalf("sender %d: %.300s", i, r.Inner)
			}
		}
		s.Close()
	}
	bob = ts.mustLogin(t, "bob", "b")
	bob.Send(`<presence/>`)
	for range 5 {
		bob.NextNamed("presence", "subscribe")
	}
}

// TestOfflineSlowReader: a client that reads its 6 MB backlog slowly is not
// disconnected (the whole backlog would not fit in the send queue), and
// when it goes away what was not written to it stays stored: the next
// login gets the rest, in order, each message once.
func TestOfflineSlowReader(t *testing.T) {
	const n = 60
	ts := startServer(t, func(c *config.Config) { c.Limits.OfflineBytes = 16 << 20 })
	bob := ts.online(t, "bob", "b")
	bob.Close()
	alice := ts.online(t, "alice", "a")
	body := strings.Repeat("y", 100<<10)
	for i := range n {
		alice.Send(fmt.Sprintf(`<message to='bob@localhost' type='chat'><body>%d %s</body></message>`, i, body))
		if i%10 == 9 {
			id := fmt.Sprintf("sync%d", i)
			alice.IQ(`<iq type='get' id='`+id+`' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, id)
		}
	}
	for _, r := range received(alice) {
		if r.Type == "error" {
			t.Fatalf("storing: %.200s", r.Inner)
		}
	}
	raw := xmpptest.DialRaw(t, ts.addr)
	raw.Bind(ts.tlsConfig(), testHost, "X-TOKEN", []byte("\x00bob\x00"+ts.token(t, "bob")), "slow")
	raw.Write(`<presence/>`)
	got := 0
	for got < 5 {
		e := raw.Read()
		switch e.XMLName.Local {
		case "presence":
			continue
		case "message":
		default:
			t.Fatalf("slow reader got %s", e)
		}
		if b, _ := e.Child("body"); !strings.HasPrefix(b.Text, fmt.Sprintf("%d ", got)) {
			t.Fatalf("message %d: %.20q", got, b.Text)
		}
		got++
		time.Sleep(200 * time.Millisecond)
	}
	raw.Close()
	waitFor(t, func() bool { return ts.srv.Router().Sessions() == 1 })

	bob = ts.mustLogin(t, "bob", "b")
	bob.Send(`<presence/>`)
	var rest []int
	for _, r := range collect(bob, 500*time.Millisecond) {
		if r.Name == "message" {
			var i int
			fmt.Sscan(r.Body, &i)
			rest = append(rest, i)
		}
	}
	if len(rest) == 0 || len(rest) > n-got || rest[len(rest)-1] != n-1 {
		t.Fatalf("after reading %d, the next login got %d messages: %v", got, len(rest), rest)
	}
	for k, i := range rest {
		if i != n-len(rest)+k {
			t.Fatalf("the next login got %v, want the last %d in order", rest, len(rest))
		}
	}
	t.Logf("read %d slowly, %d were written and lost with the connection, %d kept for the next login", got, n-got-len(rest), len(rest))
}
