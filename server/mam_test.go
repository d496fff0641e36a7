package server_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
)

var (
	// mamStanzaID finds a stanza-id element and its attributes.
	mamStanzaID = regexp.MustCompile(`<stanza-id xmlns="urn:xmpp:sid:0"([^>]*)>`)
	mamAttr     = regexp.MustCompile(`\s([a-z]+)="([^"]*)"`)
	mamResult   = regexp.MustCompile(`<result xmlns="urn:xmpp:mam:2" queryid="([^"]*)" id="([^"]*)">.*<body[^>]*>([^<]*)</body>`)
	mamFirst    = regexp.MustCompile(`<first[^>]*>([^<]*)</first>`)
	mamLast     = regexp.MustCompile(`<last[^>]*>([^<]*)</last>`)
	mamCount    = regexp.MustCompile(`<count[^>]*>([^<]*)</count>`)
)

// archiveIDBy returns the id of the stanza-id by by in a message's
// children, "" when there is none.
func archiveIDBy(inner, by string) string {
	for _, m := range mamStanzaID.FindAllStringSubmatch(inner, -1) {
		attrs := map[string]string{}
		for _, a := range mamAttr.FindAllStringSubmatch(m[1], -1) {
			attrs[a[1]] = a[2]
		}
		if attrs["by"] == by {
			return attrs["id"]
		}
	}
	return ""
}

// mamPage is what one query brought.
type mamPage struct {
	ids, bodies        []string
	first, last, count string
	complete           bool
}

// queryArchive sends a MAM query with rsm (the <set/>'s children) and
// collects the results and the <fin/>.
func queryArchive(t *testing.T, c *xmpptest.Client, qid, rsm string) mamPage {
	t.Helper()
	id := "mam-" + qid
	c.Send(`<iq type="set" id="` + id + `"><query xmlns="urn:xmpp:mam:2" queryid="` + qid + `">` +
		`<set xmlns="http://jabber.org/protocol/rsm">` + rsm + `</set></query></iq>`)
	var p mamPage
	owner := c.JID.Bare().String()
	for {
		r := c.WaitFor(func(r xmpptest.Received) bool {
			return (r.Name == "iq" && r.ID == id) || (r.Name == "message" && strings.Contains(r.Inner, `queryid="`+qid+`"`))
		})
		if r.Name == "iq" {
			if r.Type != "result" {
				t.Fatalf("query %s: %+v", qid, r)
			}
			if r.From != "" && r.From != owner {
				t.Errorf("fin from %q", r.From)
			}
			p.complete = strings.Contains(r.Inner, `complete="true"`)
			if m := mamFirst.FindStringSubmatch(r.Inner); m != nil {
				p.first = m[1]
			}
			if m := mamLast.FindStringSubmatch(r.Inner); m != nil {
				p.last = m[1]
			}
			if m := mamCount.FindStringSubmatch(r.Inner); m != nil {
				p.count = m[1]
			}
			return p
		}
		// The client library drops a from of its own bare JID.
		if r.From != "" && r.From != owner {
			t.Errorf("result from %q, want the archive's bare JID %s", r.From, owner)
		}
		m := mamResult.FindStringSubmatch(r.Inner)
		if m == nil {
			t.Fatalf("query %s: not a result: %s", qid, r.Inner)
		}
		p.ids, p.bodies = append(p.ids, m[2]), append(p.bodies, m[3])
	}
}

// TestMamPaging sends alice 250 messages over real sockets, checks the
// stanza-id each carried on delivery, then pages through her archive
// forward and back.
func TestMamPaging(t *testing.T) {
	const n = 250
	ts := startServer(t, nil)
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")

	info := alice.IQ(`<iq type="get" id="d1" to="alice@localhost"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`, "d1")
	for _, f := range []string{"urn:xmpp:mam:2", "urn:xmpp:mam:2#extended", "urn:xmpp:sid:0"} {
		if !strings.Contains(info.Inner, `var="`+f+`"`) {
			t.Errorf("account disco#info lacks %s: %s", f, info.Inner)
		}
	}

	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, `<message to="alice@localhost" type="chat" id="m%d"><body>%d</body></message>`, i, i)
	}
	bob.Send(sb.String())
	var delivered, want []string
	for i := range n {
		r := alice.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" && r.From == "bob@localhost/b" })
		if r.Body != fmt.Sprint(i) {
			t.Fatalf("message %d: body %q", i, r.Body)
		}
		id := archiveIDBy(r.Inner, "alice@localhost")
		if id == "" {
			t.Fatalf("message %d has no stanza-id by alice@localhost: %s", i, r.Inner)
		}
		delivered, want = append(delivered, id), append(want, fmt.Sprint(i))
	}

	// Forward, 100 at a time.
	var ids, bodies []string
	after := ""
	for page := 0; ; page++ {
		rsm := `<max>100</max>`
		if after != "" {
			rsm += `<after>` + after + `</after>`
		}
		p := queryArchive(t, alice, fmt.Sprintf("f%d", page), rsm)
		if p.count != fmt.Sprint(n) {
			t.Errorf("forward page %d: count %q, want %d", page, p.count, n)
		}
		if len(p.ids) > 0 && (p.first != p.ids[0] || p.last != p.ids[len(p.ids)-1]) {
			t.Errorf("forward page %d: first %s last %s, results %s…%s", page, p.first, p.last, p.ids[0], p.ids[len(p.ids)-1])
		}
		ids, bodies = append(ids, p.ids...), append(bodies, p.bodies...)
		if wantComplete := len(ids) == n; p.complete != wantComplete {
			t.Fatalf("forward page %d (%d results so far): complete %v", page, len(ids), p.complete)
		}
		if p.complete {
			break
		}
		if len(p.ids) == 0 || page > n/100 {
			t.Fatalf("forward page %d: %d results, not complete", page, len(p.ids))
		}
		after = p.last
	}
	if !slices.Equal(ids, delivered) {
		t.Errorf("archive ids paging forward differ from the stanza-ids delivered")
	}
	if !slices.Equal(bodies, want) {
		t.Errorf("bodies paging forward: %q", bodies)
	}

	// Back from the end, 100 at a time: each page in order, the pages
	// newest first.
	var back [][]string
	before := ""
	for page := 0; ; page++ {
		p := queryArchive(t, alice, fmt.Sprintf("b%d", page), `<max>100</max><before>`+before+`</before>`)
		back = append(back, p.ids)
		got := 0
		for _, ps := range back {
			got += len(ps)
		}
		if wantComplete := got == n; p.complete != wantComplete {
			t.Fatalf("backward page %d (%d results so far): complete %v", page, got, p.complete)
		}
		if p.complete {
			break
		}
		if len(p.ids) == 0 || page > n/100 {
			t.Fatalf("backward page %d: %d results, not complete", page, len(p.ids))
		}
		before = p.first
	}
	slices.Reverse(back)
	if all := slices.Concat(back...); !slices.Equal(all, delivered) {
		t.Errorf("archive ids paging back differ from the stanza-ids delivered")
	}
	if len(back) != 3 || len(back[0]) != 50 {
		t.Errorf("paging back by 100 through %d took pages of %d, want 50, 100, 100", n, len(back[0]))
	}

	// Bob archived what he sent, without stanza-ids of alice's.
	p := queryArchive(t, bob, "bob", `<max>0</max>`)
	if p.count != fmt.Sprint(n) || len(p.ids) != 0 {
		t.Errorf("bob's archive: count %q, %d results; want %d, none", p.count, len(p.ids), n)
	}
	// An id that is not in the archive.
	bad := alice.IQ(`<iq type="set" id="bad"><query xmlns="urn:xmpp:mam:2"><set xmlns="http://jabber.org/protocol/rsm"><after>nope</after></set></query></iq>`, "bad")
	if bad.Type != "error" || !strings.Contains(bad.Inner, "item-not-found") {
		t.Errorf("query after an unknown id: %+v", bad)
	}
}

// TestMamOffline checks that a message stored offline is in the archive,
// and is delivered at login with the stanza-id of its archive entry.
func TestMamOffline(t *testing.T) {
	ts := startServer(t, nil)
	bob := ts.online(t, "bob", "b")
	alice := ts.online(t, "alice", "a")
	xmpptest.SubscribeBoth(t, alice, bob)
	alice.Close()
	bob.PresenceFrom("alice@localhost/a", "unavailable")
	bob.Send(`<message to="alice@localhost" type="chat" id="off"><body>while you were away</body></message>`)
	// Bob's own copy is archived at once: once his query sees it, the
	// message has been routed.
	if p := queryArchive(t, bob, "bob", `<max>10</max>`); len(p.ids) != 1 {
		t.Fatalf("bob's archive: %d results", len(p.ids))
	}
	alice = ts.online(t, "alice", "a")
	r := alice.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" && r.ID == "off" })
	id := archiveIDBy(r.Inner, "alice@localhost")
	if id == "" || !strings.Contains(r.Inner, "urn:xmpp:delay") {
		t.Fatalf("offline message without stanza-id or delay: %s", r.Inner)
	}
	p := queryArchive(t, alice, "a", `<max>10</max>`)
	if !slices.Equal(p.ids, []string{id}) || !slices.Equal(p.bodies, []string{"while you were away"}) || !p.complete {
		t.Errorf("alice's archive: %+v, want the offline message under %s", p, id)
	}
}

// TestMamOff checks that archive_messages = 0 leaves the archive out:
// no stanza-id, no feature, queries unanswered.
func TestMamOff(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.ArchiveMessages = 0 })
	alice := ts.online(t, "alice", "a")
	bob := ts.online(t, "bob", "b")
	bob.Send(`<message to="alice@localhost" type="chat" id="x"><body>hi</body></message>`)
	if r := alice.WaitFor(func(r xmpptest.Received) bool { return r.Name == "message" && r.ID == "x" }); strings.Contains(r.Inner, "stanza-id") {
		t.Errorf("a message with the archive off: %s", r.Inner)
	}
	info := alice.IQ(`<iq type="get" id="d1" to="alice@localhost"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`, "d1")
	if strings.Contains(info.Inner, "urn:xmpp:mam:2") {
		t.Errorf("account disco#info with the archive off: %s", info.Inner)
	}
	q := alice.IQ(`<iq type="set" id="q"><query xmlns="urn:xmpp:mam:2"/></iq>`, "q")
	if q.Type != "error" || !strings.Contains(q.Inner, "service-unavailable") {
		t.Errorf("a query with the archive off: %+v", q)
	}
}
