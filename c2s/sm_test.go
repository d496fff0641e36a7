package c2s

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/xmpptest"
)

// smAuth accepts alice and mallory with goodSecret.
type smAuth struct{}

func (smAuth) Authenticate(_ context.Context, c Credentials) error {
	if (c.Username == "alice" || c.Username == "mallory") && c.Secret == goodSecret {
		return nil
	}
	return errors.New("fake: wrong password")
}

// smServer serves any number of connections with one Config, so that a
// session of one may be resumed on another.
type smServer struct {
	cfg    *Config
	router *fakeRouter
	logs   *xmpptest.LogBuffer
}

func newSMServer(t *testing.T, change func(*Config)) *smServer {
	t.Helper()
	ss := &smServer{router: newFakeRouter(), logs: new(xmpptest.LogBuffer)}
	cfg := pipeConfig(ss.router, ss.logs)
	cfg.Auth, cfg.ResumeTimeout = smAuth{}, time.Minute
	if change != nil {
		change(cfg)
	}
	ss.cfg = cfg.WithDefaults()
	return ss
}

// connect serves one more connection and returns the client's end.
func (ss *smServer) connect(t *testing.T) *xmpptest.Raw {
	t.Helper()
	server, client := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(ctx, pipeConn{server}, ss.cfg)
	}()
	t.Cleanup(func() {
		cancel()
		client.Close()
		<-done
	})
	return xmpptest.NewRaw(t, client)
}

// login binds resource for user and reads the router's welcome.
func (ss *smServer) login(t *testing.T, user, resource string) *xmpptest.Raw {
	t.Helper()
	r := ss.connect(t)
	r.Bind(nil, "localhost", "PLAIN", []byte("\x00"+user+"\x00"+goodSecret), resource)
	if e := r.Read(); e.XMLName.Local != "message" {
		t.Fatalf("after bind: %s, want the welcome message", e)
	}
	return r
}

// enable sends <enable/> with attrs and returns the answer.
func enable(t *testing.T, r *xmpptest.Raw, attrs string) xmpptest.Element {
	t.Helper()
	r.Write(`<enable xmlns='urn:xmpp:sm:3' ` + attrs + `/>`)
	return r.Read()
}

// session returns the i-th session bound.
func (ss *smServer) session(t *testing.T, i int) *Session {
	t.Helper()
	ss.router.mu.Lock()
	defer ss.router.mu.Unlock()
	if len(ss.router.sessions) <= i {
		t.Fatalf("%d sessions bound, want a %dth", len(ss.router.sessions), i+1)
	}
	return ss.router.sessions[i]
}

// chat is a message with body text to s.
func chat(t *testing.T, s *Session, text string) *element.Stanza {
	t.Helper()
	st, err := element.New("message", "chat", jid.MustParse("bob@localhost/pc"), s.JID(), "m-"+text,
		xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Local: "body"}}))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// body is the text of a message's body.
func body(e xmpptest.Element) string {
	b, _ := e.Child("body")
	return b.Text
}

// readMessages reads n messages, answering or skipping the server's <r/>,
// and returns their bodies.
func readMessages(t *testing.T, r *xmpptest.Raw, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		e := r.Read()
		switch e.XMLName.Local {
		case "message":
			got = append(got, body(e))
		case "r":
		default:
			t.Fatalf("read %s, want a message or <r/>", e)
		}
	}
	return got
}

// readAnswer reads the next element other than the server's <r/>.
func readAnswer(t *testing.T, r *xmpptest.Raw) xmpptest.Element {
	t.Helper()
	for {
		if e := r.Read(); e.XMLName.Local != "r" {
			return e
		}
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(xmpptest.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSMEnable negotiates stream management: after bind only, once, with
// resumption and the shorter of both maxima when asked.
func TestSMEnable(t *testing.T) {
	tests := []struct {
		name   string
		server time.Duration // ResumeTimeout
		attrs  string
		// want: "failed" or the <enabled/> attributes resume and max.
		resume, max string
		twice       bool
	}{
		{name: "acks only", server: time.Minute, attrs: ``},
		{name: "resume, server's max", server: time.Minute, attrs: `resume='true'`, resume: "true", max: "60"},
		{name: "resume, client's shorter max", server: time.Minute, attrs: `resume='1' max='15'`, resume: "true", max: "15"},
		{name: "resume, client's longer max", server: 30 * time.Second, attrs: `resume='true' max='86400'`, resume: "true", max: "30"},
		{name: "resume off on the server", server: -1, attrs: `resume='true'`},
		{name: "twice", server: time.Minute, attrs: `resume='true'`, resume: "true", max: "60", twice: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ss := newSMServer(t, func(c *Config) { c.ResumeTimeout = tc.server })
			r := ss.login(t, "alice", "phone")
			e := enable(t, r, tc.attrs)
			if e.XMLName != (xml.Name{Space: nsSM, Local: "enabled"}) {
				t.Fatalf("got %s, want <enabled/>", e)
			}
			if got := attr(e, "resume"); got != tc.resume {
				t.Errorf("resume=%q, want %q", got, tc.resume)
			}
			if got := attr(e, "max"); got != tc.max {
				t.Errorf("max=%q, want %q", got, tc.max)
			}
			if id := attr(e, "id"); (tc.resume != "") != (len(id) >= 20) {
				t.Errorf("id=%q with resume=%q: want a long random id exactly when resumable", id, tc.resume)
			}
			if tc.twice {
				e := enable(t, r, tc.attrs)
				if _, ok := e.Child("unexpected-request"); e.XMLName.Local != "failed" || !ok {
					t.Fatalf("second <enable/>: %s, want <failed><unexpected-request/></failed>", e)
				}
			}
			// The stream goes on.
			r.Write(`<message to='bob@localhost'><body>hi</body></message>`)
			ss.router.nextRouted(t)
		})
	}
}

// TestSMEnableBeforeBind refuses <enable/> before bind with <failed/>;
// bind and a later <enable/> work.
func TestSMEnableBeforeBind(t *testing.T) {
	ss := newSMServer(t, nil)
	r := ss.connect(t)
	features := r.Open("localhost")
	if e := r.Auth("PLAIN", []byte("\x00alice\x00"+goodSecret)); e.XMLName.Local != "success" {
		t.Fatalf("auth: %s", e)
	}
	if _, ok := features.Child("sm"); ok {
		t.Errorf("<sm/> offered before authentication: %s", features)
	}
	features = r.Open("localhost")
	if sm, ok := features.Child("sm"); !ok || sm.XMLName.Space != nsSM {
		t.Fatalf("features after SASL: %s, want <sm xmlns='%s'/>", features, nsSM)
	}
	e := enable(t, r, `resume='true'`)
	if _, ok := e.Child("unexpected-request"); e.XMLName.Local != "failed" || !ok {
		t.Fatalf("<enable/> before bind: %s, want <failed><unexpected-request/></failed>", e)
	}
	r.Write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>`)
	if e := r.Read(); e.XMLName.Local != "iq" || attr(e, "type") != "result" {
		t.Fatalf("bind: %s", e)
	}
	r.Read() // the welcome
	if e := enable(t, r, `resume='true'`); e.XMLName.Local != "enabled" {
		t.Fatalf("<enable/> after bind: %s", e)
	}
}

// TestSMAcks: the server answers <r/> with the stanzas it handled, asks
// for acks itself, drops what is acknowledged, and ends the stream when
// the client acknowledges more than it was sent.
func TestSMAcks(t *testing.T) {
	ss := newSMServer(t, nil)
	r := ss.login(t, "alice", "phone")
	if e := enable(t, r, ``); e.XMLName.Local != "enabled" {
		t.Fatalf("enable: %s", e)
	}
	for i := range 3 {
		r.Write(fmt.Sprintf(`<message to='bob@localhost' id='c%d'><body>%d</body></message>`, i, i))
		ss.router.nextRouted(t)
	}
	r.Write(`<iq type='get' id='bad' to='@@'/>`) // answered by c2s, counted all the same
	if e := r.Read(); attr(e, "type") != "error" {
		t.Fatalf("bad address: %s, want an error", e)
	}
	r.Write(`<r xmlns='urn:xmpp:sm:3'/>`)
	if e := readAnswer(t, r); e.XMLName != (xml.Name{Space: nsSM, Local: "a"}) || attr(e, "h") != "4" {
		t.Fatalf("answer to <r/>: %s, want <a h='4'/>", e)
	}
	r.Write(`<a xmlns='urn:xmpp:sm:3' h='1'/>`) // the error reply

	s := ss.session(t, 0)
	for i := range 7 {
		s.Deliver(chat(t, s, strconv.Itoa(i)))
	}
	// Seven messages, and at least one <r/> covering them.
	var bodies []string
	requests := 0
	for len(bodies) < 7 || requests == 0 {
		e := r.Read()
		switch e.XMLName.Local {
		case "message":
			bodies = append(bodies, body(e))
		case "r":
			requests++
		default:
			t.Fatalf("read %s", e)
		}
	}
	if fmt.Sprint(bodies) != "[0 1 2 3 4 5 6]" {
		t.Errorf("messages %v, want 0 to 6 in order", bodies)
	}
	unacked := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.sm.unacked)
	}
	// The writer records what it wrote once the write returned.
	waitFor(t, "7 unacknowledged", func() bool { return unacked() == 7 })
	r.Write(`<a xmlns='urn:xmpp:sm:3' h='6'/>`)
	waitFor(t, "the ack of 6", func() bool { return unacked() == 2 })
	r.Write(`<a xmlns='urn:xmpp:sm:3' h='8'/>`)
	waitFor(t, "the ack of 8", func() bool { return unacked() == 0 })

	r.Write(`<a xmlns='urn:xmpp:sm:3' h='9'/>`)
	if got := r.ExpectStreamError(); got != "handled-count-too-high" {
		t.Errorf("h past what was sent: stream error %q, want undefined-condition with handled-count-too-high", got)
	}
}

// TestSMCounterWrap: both counters wrap at 2^32 (XEP-0198 §4).
func TestSMCounterWrap(t *testing.T) {
	st := &element.Stanza{Name: "message"}
	tests := []struct {
		name    string
		acked   uint32
		unacked int
		h       uint32
		wantErr bool
		left    int
	}{
		{"across the wrap", math.MaxUint32 - 1, 3, 1, false, 0},
		{"to the wrap", math.MaxUint32 - 1, 3, math.MaxUint32, false, 2},
		{"onto zero", math.MaxUint32, 2, 0, false, 1},
		{"unchanged", math.MaxUint32, 2, math.MaxUint32, false, 2},
		{"too high across the wrap", math.MaxUint32, 1, 1, true, 1},
		{"behind", 10, 1, 9, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Session{sm: &smState{acked: tc.acked}}
			for range tc.unacked {
				s.sm.unacked = append(s.sm.unacked, st)
			}
			err := s.ackLocked(tc.h)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ack %d after %d with %d unacked: err %v, want error %v", tc.h, tc.acked, tc.unacked, err, tc.wantErr)
			}
			if len(s.sm.unacked) != tc.left {
				t.Errorf("%d left unacknowledged, want %d", len(s.sm.unacked), tc.left)
			}
			if !tc.wantErr && s.sm.acked != tc.h {
				t.Errorf("acked %d, want %d", s.sm.acked, tc.h)
			}
		})
	}

	// The server's own h, over a stream.
	ss := newSMServer(t, nil)
	r := ss.login(t, "alice", "phone")
	enable(t, r, ``)
	s := ss.session(t, 0)
	s.sm.inH = math.MaxUint32 // read by the read loop, idle until the next write
	r.Write(`<message to='bob@localhost'><body>a</body></message>`)
	ss.router.nextRouted(t)
	r.Write(`<r xmlns='urn:xmpp:sm:3'/>`)
	if e := readAnswer(t, r); attr(e, "h") != "0" {
		t.Errorf("h after 2^32 stanzas: %s, want h='0'", e)
	}
}

// TestSMResume drops a resumable session's connection: it stays bound and
// queues; a new connection of the same user resumes it and gets what was
// not acknowledged, then what came meanwhile, in order, once each.
func TestSMResume(t *testing.T) {
	ss := newSMServer(t, nil)
	r := ss.login(t, "alice", "phone")
	e := enable(t, r, `resume='true'`)
	id := attr(e, "id")
	s := ss.session(t, 0)
	for i := range 4 {
		s.Deliver(chat(t, s, strconv.Itoa(i)))
	}
	if got := readMessages(t, r, 4); fmt.Sprint(got) != "[0 1 2 3]" {
		t.Fatalf("before the drop: %v", got)
	}
	r.Write(`<message to='bob@localhost'><body>from the phone</body></message>`)
	ss.router.nextRouted(t)
	r.Write(`<a xmlns='urn:xmpp:sm:3' h='2'/>`)
	r.Close() // the network is gone

	waitFor(t, "the session to wait", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.waiting
	})
	s.Deliver(chat(t, s, "4"))
	s.Deliver(chat(t, s, "5"))

	// Another user may not take it; an unknown id is not found either.
	for _, tc := range []struct{ user, previd string }{{"mallory", id}, {"alice", "nope"}} {
		m := ss.connect(t)
		m.Open("localhost")
		m.Auth("PLAIN", []byte("\x00"+tc.user+"\x00"+goodSecret))
		m.Open("localhost")
		m.Write(fmt.Sprintf(`<resume xmlns='urn:xmpp:sm:3' previd='%s' h='2'/>`, tc.previd))
		if e := m.Read(); e.XMLName.Local != "failed" {
			t.Fatalf("%s resuming %q: %s, want <failed/>", tc.user, tc.previd, e)
		} else if _, ok := e.Child("item-not-found"); !ok {
			t.Errorf("%s resuming %q: %s, want item-not-found", tc.user, tc.previd, e)
		}
		// A failed resumption leaves the client free to bind.
		m.Write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
		if e := m.Read(); attr(e, "type") != "result" {
			t.Errorf("bind after a failed resumption: %s", e)
		}
	}

	r2 := ss.connect(t)
	r2.Open("localhost")
	r2.Auth("PLAIN", []byte("\x00alice\x00"+goodSecret))
	r2.Open("localhost")
	r2.Write(fmt.Sprintf(`<resume xmlns='urn:xmpp:sm:3' previd='%s' h='2'/>`, id))
	e = r2.Read()
	if e.XMLName != (xml.Name{Space: nsSM, Local: "resumed"}) || attr(e, "previd") != id || attr(e, "h") != "1" {
		t.Fatalf("resume: %s, want <resumed previd='%s' h='1'/>", e, id)
	}
	s.Deliver(chat(t, s, "6"))
	if got := readMessages(t, r2, 5); fmt.Sprint(got) != "[2 3 4 5 6]" {
		t.Errorf("after resumption: %v, want [2 3 4 5 6]", got)
	}
	r2.Write(`<message to='bob@localhost'><body>again</body></message>`)
	if rt := ss.router.nextRouted(t); rt.st.Name != "message" {
		t.Errorf("routed %s", rt.st.Name)
	}
	r2.Write(`<r xmlns='urn:xmpp:sm:3'/>`)
	if e := readAnswer(t, r2); e.XMLName.Local != "a" || attr(e, "h") != "2" {
		t.Errorf("h after resumption: %s, want <a h='2'/>", e)
	}
	ss.router.mu.Lock()
	unbinds, resumed, rerouted := ss.router.unbinds, ss.router.resumed, len(ss.router.rerouted)
	ss.router.mu.Unlock()
	if unbinds != 0 || resumed != 1 || rerouted != 0 {
		t.Errorf("unbinds %d, Resumed %d, rerouted %d; want 0, 1, 0", unbinds, resumed, rerouted)
	}
}

// TestSMResumeLiveConnection resumes a session whose old connection is
// still open: the old one is closed, the new one takes over.
func TestSMResumeLiveConnection(t *testing.T) {
	ss := newSMServer(t, nil)
	r := ss.login(t, "alice", "phone")
	id := attr(enable(t, r, `resume='true'`), "id")
	drain(r) // the old client reads until its connection is closed
	r2 := ss.resume(t, id)
	if e := r2.Read(); e.XMLName.Local != "resumed" {
		t.Fatalf("resume: %s", e)
	}
	s := ss.session(t, 0)
	s.Deliver(chat(t, s, "new"))
	if got := readMessages(t, r2, 1); got[0] != "new" {
		t.Errorf("got %v", got)
	}
}

// TestSMTimeout: a session not resumed in time is unbound, and the
// messages the client did not acknowledge, sent or queued, are routed
// again in order; those it acknowledged are not. A session closed
// cleanly does not wait.
func TestSMTimeout(t *testing.T) {
	// Long enough for the test to see the session wait and deliver to it
	// before it expires, on a loaded machine too (200 ms was not).
	ss := newSMServer(t, func(c *Config) { c.ResumeTimeout = time.Second })
	r := ss.login(t, "alice", "phone")
	id := attr(enable(t, r, `resume='true' max='600'`), "id")
	s := ss.session(t, 0)
	for i := range 3 {
		s.Deliver(chat(t, s, strconv.Itoa(i)))
	}
	readMessages(t, r, 3)
	r.Write(`<a xmlns='urn:xmpp:sm:3' h='1'/>`)
	r.Close()
	waitFor(t, "the session to wait", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.waiting
	})
	s.Deliver(chat(t, s, "3"))
	select {
	case <-ss.router.unbindCalls:
	case <-time.After(xmpptest.Timeout):
		t.Fatal("not unbound after the resumption timeout")
	}
	rerouted := func() []string {
		ss.router.mu.Lock()
		defer ss.router.mu.Unlock()
		var ids []string
		for _, st := range ss.router.rerouted {
			ids = append(ids, st.ID)
		}
		return ids
	}
	waitFor(t, "3 messages rerouted", func() bool { return len(rerouted()) >= 3 })
	if got := rerouted(); fmt.Sprint(got) != "[m-1 m-2 m-3]" {
		t.Errorf("rerouted %v, want [m-1 m-2 m-3]", got)
	}
	ss.router.mu.Lock()
	early := ss.router.rerouteEarly
	ss.router.mu.Unlock()
	if early {
		t.Error("messages rerouted before the session was unbound")
	}
	if s.Deliver(chat(t, s, "late")) {
		t.Error("an ended session took a delivery")
	}
	if ss.cfg.resumable.get(id) != nil {
		t.Error("an ended session can still be resumed")
	}

	// Closed cleanly: unbound at once, nothing waits.
	r = ss.login(t, "alice", "laptop")
	enable(t, r, `resume='true'`)
	r.Write(`</stream:stream>`)
	select {
	case <-ss.router.unbindCalls:
	case <-time.After(100 * time.Millisecond):
		t.Error("a session closed cleanly was not unbound at once")
	}
}

// TestSMWaitingCost measures what a session waiting for resumption holds
// besides its unacknowledged stanzas: at most 4 KiB (issue 11), its
// connection, buffers and goroutines gone. It is the heap that n waiting
// sessions hold and that goes when they end, over n.
func TestSMWaitingCost(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory")
	}
	const n = 1000
	ss := newSMServer(t, func(c *Config) { c.Logger = slog.New(slog.DiscardHandler) })
	goroutines := runtime.NumGoroutine()
	for i := range n {
		r := ss.login(t, "alice", "r"+strconv.Itoa(i))
		enable(t, r, `resume='true'`)
		r.Close()
	}
	for i := range n {
		waitFor(t, "the session to wait", ss.session(t, i).Waiting)
	}
	// Serve returned for each: no goroutine is left per waiting session.
	waitFor(t, "the connections' goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines })
	waiting := heapAlloc()

	ss.router.mu.Lock()
	sessions := ss.router.sessions
	ss.router.sessions, ss.router.bound = nil, nil
	ss.router.mu.Unlock()
	for _, s := range sessions {
		go func() { <-ss.router.unbindCalls }()
		s.Close(stream.Error{})
	}
	sessions = nil
	ended := heapAlloc()
	per := (int64(waiting) - int64(ended)) / n
	t.Logf("a waiting session holds %d bytes", per)
	if per > 4096 || per <= 0 {
		t.Errorf("a waiting session holds %d bytes, want at most 4096", per)
	}
}

// heapAlloc is the live heap after a collection.
func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// heldConn is a connection whose reads, once it was closed, wait for
// release: the read loop learns of the close only when the test lets it.
type heldConn struct {
	pipeConn
	once, freed     sync.Once
	closed, release chan struct{}
}

// free lets held reads return; it may be called more than once.
func (c *heldConn) free() { c.freed.Do(func() { close(c.release) }) }

func (c *heldConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.pipeConn.Close()
}

func (c *heldConn) Read(p []byte) (int, error) {
	n, err := c.pipeConn.Read(p)
	if err != nil {
		select {
		case <-c.closed:
			<-c.release
		default:
		}
	}
	return n, err
}

// connectHeld is connect over a heldConn, with the channel closed once
// Serve returned. Serve is not waited for at cleanup: a test checks it.
func (ss *smServer) connectHeld(t *testing.T) (*xmpptest.Raw, *heldConn, <-chan struct{}) {
	t.Helper()
	server, client := net.Pipe()
	conn := &heldConn{pipeConn: pipeConn{server}, closed: make(chan struct{}), release: make(chan struct{})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		Serve(context.Background(), conn, ss.cfg)
	}()
	t.Cleanup(func() { client.Close() })
	return xmpptest.NewRaw(t, client), conn, served
}

// loginHeld is login over connectHeld.
func (ss *smServer) loginHeld(t *testing.T, user, resource string) (*xmpptest.Raw, *heldConn, <-chan struct{}) {
	t.Helper()
	r, conn, served := ss.connectHeld(t)
	r.Bind(nil, "localhost", "PLAIN", []byte("\x00"+user+"\x00"+goodSecret), resource)
	if e := r.Read(); e.XMLName.Local != "message" {
		t.Fatalf("after bind: %s, want the welcome message", e)
	}
	return r, conn, served
}

// drain reads r until its connection closes, as a client still online
// does.
func drain(r *xmpptest.Raw) {
	go func() {
		for {
			if _, err := r.Token(); err != nil {
				return
			}
		}
	}()
}

// resume connects, authenticates alice and asks to resume the session
// id with h='0'; the answer is the caller's to read.
func (ss *smServer) resume(t *testing.T, id string) *xmpptest.Raw {
	t.Helper()
	r := ss.connect(t)
	r.Open("localhost")
	r.Auth("PLAIN", []byte("\x00alice\x00"+goodSecret))
	r.Open("localhost")
	r.Write(fmt.Sprintf(`<resume xmlns='urn:xmpp:sm:3' previd='%s' h='0'/>`, id))
	return r
}

// onlineHeld logs alice in over connectHeld with resumption enabled, and
// keeps reading for her client: it returns her session, its resumption
// id, the connection and the channel closed once its Serve returned.
func (ss *smServer) onlineHeld(t *testing.T) (*Session, string, *heldConn, <-chan struct{}) {
	t.Helper()
	r, conn, served := ss.loginHeld(t, "alice", "phone")
	id := attr(enable(t, r, `resume='true'`), "id")
	drain(r) // the client reads until its connection is closed
	return ss.session(t, 0), id, conn, served
}

// within fails the test unless ch is closed (or sends) in time.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(xmpptest.Timeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitTakenOver waits until a resumption closed s's old connection,
// conn, and waits for its held reader to stop.
func waitTakenOver(t *testing.T, s *Session, conn *heldConn) {
	t.Helper()
	<-conn.closed
	waitFor(t, "the resumption to take the session over", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.on == nil && s.reading
	})
}

// TestSMWriteFailedThenClosed: a resumable session whose write failed is
// closed (as a server shutting down closes every session) before its
// read loop saw the connection go. Serve must still return: the session
// ends rather than wait for a writer that no longer has a connection.
func TestSMWriteFailedThenClosed(t *testing.T) {
	ss := newSMServer(t, func(c *Config) { c.WriteTimeout = 50 * time.Millisecond })
	r, conn, served := ss.loginHeld(t, "alice", "phone")
	enable(t, r, `resume='true'`)
	s := ss.session(t, 0)

	// The client reads no more: the write times out and the writer lets
	// the connection go, leaving the session to its read loop.
	s.Deliver(chat(t, s, "unread"))
	waitFor(t, "the writer to give up the link", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.link == nil && !s.writing
	})
	s.Close(streamError(stream.SystemShutdown, ""))
	conn.free()
	within(t, served, "Serve to return after the session was closed")
	select {
	case <-s.done:
	default:
		t.Error("the session's writer is not marked done")
	}
}

// TestSMClosedWhileTakenOver: a session closed while a resumption waits
// for its old connection's reader to stop is not resumed, and it ends:
// unbound, rather than left bound with no connection and no goroutine.
func TestSMClosedWhileTakenOver(t *testing.T) {
	ss := newSMServer(t, nil)
	s, id, conn, served := ss.onlineHeld(t)

	r2 := ss.resume(t, id)
	t.Cleanup(conn.free) // before r2's cleanup, which waits for its Serve
	// The resumption closed the old connection, whose reader is held:
	// the session is taken over, and closed now.
	waitTakenOver(t, s, conn)
	s.Close(streamError(stream.Conflict, ""))
	conn.free()
	if e := r2.Read(); e.XMLName.Local != "failed" {
		t.Fatalf("resume of a closed session: %s, want <failed/>", e)
	}
	within(t, ss.router.unbindCalls, "the closed session to be unbound")
	within(t, s.done, "the closed session to be marked done")
	if ss.cfg.resumable.get(id) != nil {
		t.Error("the closed session can still be resumed")
	}
	within(t, served, "the old connection's Serve to return")
}

// TestSMConcurrentResume: while one resumption takes a session over, a
// second one of the same session fails at once, rather than both
// attaching a connection to it (the first would then read for the
// session with nothing written to it).
func TestSMConcurrentResume(t *testing.T) {
	ss := newSMServer(t, nil)
	s, id, conn, _ := ss.onlineHeld(t)
	first := ss.resume(t, id)
	waitTakenOver(t, s, conn)
	second := ss.resume(t, id)
	// Before the connections' cleanups, which wait for Serve: a failed
	// check below must not leave the first resumption waiting.
	t.Cleanup(conn.free)
	if e := second.Read(); e.XMLName.Local != "failed" {
		t.Fatalf("second resumption during the first: %s, want <failed/>", e)
	}
	conn.free()
	if e := first.Read(); e.XMLName.Local != "resumed" {
		t.Fatalf("first resumption: %s, want <resumed/>", e)
	}
	s.Deliver(chat(t, s, "after"))
	if got := readMessages(t, first, 1); got[0] != "after" {
		t.Errorf("after resumption got %v", got)
	}
}
