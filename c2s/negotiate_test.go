package c2s

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/xmpptest"
)

// The secrets of the fake authenticator: never to be found in the logs.
const (
	goodSecret = "good-s3cret"
	badSecret  = "bad-s3cret"
)

// fakeAuth accepts alice with goodSecret.
type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, c Credentials) error {
	if c.Username == "alice" && c.Secret == goodSecret {
		return nil
	}
	return errors.New("fake: wrong password")
}

// fakeRouter records what c2s asks of it.
type fakeRouter struct {
	refuse string // a resource Bind refuses with conflict

	mu          sync.Mutex
	bound       []jid.JID
	bindCtxOK   bool  // every Bind's context had a deadline and was live
	unbinds     int   // Unbind calls
	unbindErr   error // the Err of Unbind's context, at the call
	sessionErr  error // the Err of the session's context, at Unbind
	unbindCalls chan struct{}
	routed      chan routed
	sessions    []*Session        // bound, in order
	rerouted    []*element.Stanza // Reroute's messages
	// rerouteEarly: a Reroute came before any Unbind.
	rerouteEarly bool
	resumed      int // Resumed calls
}

// routed is one Route call.
type routed struct {
	ctx context.Context
	st  *element.Stanza
}

func newFakeRouter() *fakeRouter {
	return &fakeRouter{bindCtxOK: true, unbindCalls: make(chan struct{}, 4), routed: make(chan routed, 16)}
}

// welcome is what Bind delivers at once, before negotiation is over: it
// must reach the client after the bind result.
const welcome = "welcome"

func (r *fakeRouter) Bind(ctx context.Context, s *Session) error {
	if s.JID().Resourcepart() == r.refuse {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict}
	}
	_, hasDeadline := ctx.Deadline()
	r.mu.Lock()
	r.bound = append(r.bound, s.JID())
	r.sessions = append(r.sessions, s)
	r.bindCtxOK = r.bindCtxOK && hasDeadline && ctx.Err() == nil
	r.mu.Unlock()
	msg, err := element.New("message", "chat", s.JID().Domain(), s.JID(), "w1",
		xmlstream.Wrap(xmlstream.Token(xml.CharData(welcome)), xml.StartElement{Name: xml.Name{Local: "body"}}))
	if err != nil {
		return err
	}
	s.Deliver(msg)
	return nil
}

func (r *fakeRouter) Unbind(ctx context.Context, s *Session) {
	r.mu.Lock()
	r.unbinds++
	r.unbindErr, r.sessionErr = ctx.Err(), s.Context().Err()
	r.mu.Unlock()
	r.unbindCalls <- struct{}{}
}

func (r *fakeRouter) Route(ctx context.Context, s *Session, st *element.Stanza) {
	r.routed <- routed{ctx: ctx, st: st}
}

func (r *fakeRouter) Reroute(ctx context.Context, s *Session, st *element.Stanza) {
	r.mu.Lock()
	r.rerouted = append(r.rerouted, st)
	r.rerouteEarly = r.rerouteEarly || r.unbinds == 0
	r.mu.Unlock()
}

func (r *fakeRouter) Resumed(ctx context.Context, s *Session) {
	r.mu.Lock()
	r.resumed++
	r.mu.Unlock()
}

// nextRouted waits for a Route call.
func (r *fakeRouter) nextRouted(t *testing.T) routed {
	t.Helper()
	select {
	case rt := <-r.routed:
		return rt
	case <-time.After(xmpptest.Timeout):
		t.Fatal("nothing routed")
	}
	return routed{}
}

// twoStep is a client-first SASL mechanism of two round trips, such as
// SCRAM: the client sends "hello", the server challenges "who?", the
// client answers "user\x00secret", and the server succeeds without data.
var twoStep = sasl.Mechanism{
	Name: "X-TWO-STEP",
	Start: func(*sasl.Negotiator) (bool, []byte, interface{}, error) {
		return true, []byte("hello"), nil, nil
	},
	Next: func(n *sasl.Negotiator, msg []byte, _ interface{}) (bool, []byte, interface{}, error) {
		step := n.State() & sasl.StepMask
		if n.State()&sasl.Receiving == 0 { // the client
			if step == sasl.AuthTextSent && string(msg) == "who?" {
				user, secret, _ := n.Credentials()
				return true, append(append(user, 0), secret...), nil, nil
			}
			return false, nil, nil, nil // <success/>
		}
		switch {
		case step == sasl.AuthTextSent && string(msg) == "hello":
			return true, []byte("who?"), nil, nil
		case step == sasl.ResponseSent:
			user, secret, ok := bytes.Cut(msg, []byte{0})
			if !ok {
				return false, nil, nil, sasl.ErrInvalidChallenge
			}
			if !n.Permissions(sasl.Credentials(func() ([]byte, []byte, []byte) { return user, secret, nil })) {
				return false, nil, nil, sasl.ErrAuthn
			}
			return false, nil, nil, nil
		}
		return false, nil, nil, sasl.ErrInvalidChallenge
	},
}

// endless is a mechanism that never finishes.
var endless = sasl.Mechanism{
	Name: "X-ENDLESS",
	Start: func(*sasl.Negotiator) (bool, []byte, interface{}, error) {
		return true, []byte("more"), nil, nil
	},
	Next: func(*sasl.Negotiator, []byte, interface{}) (bool, []byte, interface{}, error) {
		return true, []byte("more"), nil, nil
	},
}

// testServer is one c2s.Serve over net.Pipe, with the fakes.
type testServer struct {
	router *fakeRouter
	client net.Conn
	logs   *xmpptest.LogBuffer
	done   chan struct{} // closed when Serve returned
}

// pipeConfig is the Config of the tests over net.Pipe, with the fakes:
// no TLS, debug logs to logs.
func pipeConfig(router Router, logs io.Writer) *Config {
	return &Config{
		Serves:           func(d string) bool { return d == "localhost" },
		Secure:           true, // no TLS over a pipe
		Mechanisms:       []sasl.Mechanism{sasl.Plain, twoStep, endless},
		Auth:             fakeAuth{},
		Router:           router,
		Logger:           slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		NegotiateTimeout: 10 * time.Second,
		CloseGrace:       100 * time.Millisecond,
	}
}

// serve runs Serve on one end of a pipe; change adjusts the Config.
func serve(t *testing.T, change func(*Config)) *testServer {
	t.Helper()
	ts := &testServer{router: newFakeRouter(), logs: new(xmpptest.LogBuffer), done: make(chan struct{})}
	cfg := pipeConfig(ts.router, ts.logs)
	if change != nil {
		change(cfg)
	}
	server, client := net.Pipe()
	ts.client = client
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(ts.done)
		Serve(ctx, pipeConn{server}, cfg)
	}()
	t.Cleanup(func() {
		cancel()
		client.Close()
		<-ts.done
		logs := ts.logs.String()
		if strings.Contains(logs, goodSecret) || strings.Contains(logs, badSecret) {
			t.Errorf("a secret was logged:\n%s", logs)
		}
	})
	return ts
}

// ended waits for Serve to return.
func (ts *testServer) ended(t *testing.T) {
	t.Helper()
	select {
	case <-ts.done:
	case <-time.After(xmpptest.Timeout):
		t.Fatal("Serve did not return")
	}
}

// login negotiates with mellium as the client: SASL with mech, then bind.
func login(ts *testServer, mech sasl.Mechanism, secret, resource string) (*xmpp.Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), xmpptest.Timeout)
	defer cancel()
	origin := jid.MustParse("alice@localhost")
	features := []xmpp.StreamFeature{xmpp.SASL("", secret, mech), xmpptest.BindResource(resource)}
	return xmpp.NewSession(ctx, origin.Domain(), origin, ts.client, xmpp.Secure,
		xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
			return xmpp.StreamConfig{Features: features}
		}))
}

// TestLogin logs in with mellium over net.Pipe: SASL with one or several
// steps, bind, a stanza routed with its from stamped, and the session's
// contexts through its end.
func TestLogin(t *testing.T) {
	tests := []struct {
		name    string
		mech    sasl.Mechanism
		secret  string
		wantErr string // in the client's error; "" for a bound session
	}{
		{"plain", sasl.Plain, goodSecret, ""},
		{"plain, wrong secret", sasl.Plain, badSecret, "not-authorized"},
		{"two steps", twoStep, goodSecret, ""},
		{"two steps, wrong secret", twoStep, badSecret, "not-authorized"},
		{"a mechanism that never ends", endless, goodSecret, "malformed-request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := serve(t, nil)
			sess, err := login(ts, tc.mech, tc.secret, "phone")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("login: got error %v, want %s", err, tc.wantErr)
				}
				ts.router.mu.Lock()
				defer ts.router.mu.Unlock()
				if n := len(ts.router.bound); n != 0 {
					t.Errorf("%d sessions bound after a failed login", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if got, want := sess.LocalAddr().String(), "alice@localhost/phone"; got != want {
				t.Errorf("bound %s, want %s", got, want)
			}
			c := xmpptest.NewClient(t, sess)
			if got := c.Next(); got.Name != "message" || got.Body != welcome {
				t.Errorf("first after bind: %+v, want the message Bind delivered", got)
			}

			c.Send(`<message to='bob@localhost' from='mallory@evil.example/x' type='chat'><body>hi</body></message>`)
			rt := ts.router.nextRouted(t)
			if got := rt.st.From.String(); got != "alice@localhost/phone" {
				t.Errorf("routed from %s, want the bound JID", got)
			}
			if rt.ctx.Err() != nil {
				t.Errorf("Route's context is done during the session: %v", rt.ctx.Err())
			}

			c.Close()
			ts.ended(t)
			r := ts.router
			r.mu.Lock()
			defer r.mu.Unlock()
			if !r.bindCtxOK {
				t.Error("Bind's context had no deadline or was done")
			}
			if r.unbinds != 1 {
				t.Errorf("Unbind called %d times, want 1", r.unbinds)
			}
			if r.unbindErr != nil {
				t.Errorf("Unbind's context is done: %v", r.unbindErr)
			}
			if !errors.Is(r.sessionErr, context.Canceled) {
				t.Errorf("the session's context at Unbind: %v, want cancelled", r.sessionErr)
			}
			if !errors.Is(rt.ctx.Err(), context.Canceled) {
				t.Errorf("Route's context after the session: %v, want cancelled", rt.ctx.Err())
			}
		})
	}
}

// TestSASLExchanges drives SASL by hand: retries, limits, aborts and
// mechanisms without an initial response.
func TestSASLExchanges(t *testing.T) {
	plain := func(secret string) string {
		return base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + secret))
	}
	auth := func(mech, payload string) string {
		return `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='` + mech + `'>` + payload + `</auth>`
	}
	response := func(payload string) string {
		return `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + payload + `</response>`
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	const abort = `<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`
	type step struct {
		send string
		// want is what the server answers: "success", "failure <cond>",
		// "challenge <decoded text>", or "stream-error <cond>".
		want string
	}
	tests := []struct {
		name     string
		attempts int
		steps    []step
	}{
		{"wrong secret, then the right one", 0, []step{
			{auth("PLAIN", plain(badSecret)), "failure not-authorized"},
			{auth("PLAIN", plain(goodSecret)), "success"},
		}},
		{"too many attempts", 2, []step{
			{auth("PLAIN", plain(badSecret)), "failure not-authorized"},
			{auth("PLAIN", plain(badSecret)), "failure not-authorized"},
			{auth("PLAIN", plain(goodSecret)), "failure not-authorized"},
			{"", "stream-error policy-violation"},
		}},
		{"unknown mechanism, then a known one", 0, []step{
			{auth("X-NONE", plain(goodSecret)), "failure invalid-mechanism"},
			{auth("PLAIN", plain(goodSecret)), "success"},
		}},
		{"not base64", 0, []step{
			{auth("PLAIN", "!!!"), "failure incorrect-encoding"},
			{auth("PLAIN", plain(goodSecret)), "success"},
		}},
		{"no initial response", 0, []step{
			{auth("PLAIN", ""), "challenge "},
			{response(plain(goodSecret)), "success"},
		}},
		{"two steps by hand", 0, []step{
			{auth("X-TWO-STEP", b64("hello")), "challenge who?"},
			{response(b64("alice\x00" + goodSecret)), "success"},
		}},
		{"abort in the middle, then log in", 0, []step{
			{auth("X-TWO-STEP", b64("hello")), "challenge who?"},
			{abort, "failure aborted"},
			{auth("PLAIN", plain(goodSecret)), "success"},
		}},
		{"a stanza instead of a response", 0, []step{
			{auth("X-TWO-STEP", b64("hello")), "challenge who?"},
			{`<message/>`, "stream-error not-authorized"},
		}},
		{"a bad response", 0, []step{
			{auth("X-TWO-STEP", b64("hello")), "challenge who?"},
			{response(b64("no separator")), "failure malformed-request"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := serve(t, func(c *Config) { c.MaxAuthAttempts = tc.attempts })
			r := xmpptest.NewRaw(t, ts.client)
			r.Open("localhost")
			for i, s := range tc.steps {
				if s.send != "" {
					r.Write(s.send)
				}
				if got := answer(r, s.want); got != s.want {
					t.Fatalf("step %d: sent %s, got %q, want %q", i+1, s.send, got, s.want)
				}
			}
		})
	}
}

// answer reads the server's answer in the form of want's first word.
func answer(r *xmpptest.Raw, want string) string {
	kind, _, _ := strings.Cut(want, " ")
	if kind == "stream-error" {
		return kind + " " + r.ExpectStreamError()
	}
	e := r.Read()
	switch e.XMLName.Local {
	case "failure":
		for _, c := range e.Children {
			if c.XMLName.Local != "text" {
				return "failure " + c.XMLName.Local
			}
		}
	case "challenge":
		text := strings.TrimSpace(e.Text)
		if text == "=" {
			text = ""
		}
		b, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return "challenge with bad base64 " + e.Text
		}
		return "challenge " + string(b)
	}
	return e.XMLName.Local
}

// TestBind binds by hand: a refusal by the Router and a resource that is
// no resource give the error, and the client may try again.
func TestBind(t *testing.T) {
	ts := serve(t, nil)
	ts.router.refuse = "taken"
	r := xmpptest.NewRaw(t, ts.client)
	r.Open("localhost")
	if e := r.Auth("PLAIN", []byte("\x00alice\x00"+goodSecret)); e.XMLName.Local != "success" {
		t.Fatalf("auth: %s", e)
	}
	r.Open("localhost")
	bind := func(id, resource string) xmpptest.Element {
		r.Write(`<iq type='set' id='` + id + `'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`)
		return r.Read()
	}
	for _, tc := range []struct{ resource, cond string }{
		{"taken", "conflict"},
		{strings.Repeat("r", 1100), "bad-request"}, // longer than a resourcepart may be
	} {
		e := bind("b-"+tc.cond, tc.resource)
		errEl, _ := e.Child("error")
		if _, ok := errEl.Child(tc.cond); attr(e, "type") != "error" || !ok {
			t.Errorf("bind %.20s: got %s, want an error with %s", tc.resource, e, tc.cond)
		}
	}
	e := bind("b2", "free")
	b, _ := e.Child("bind")
	if j, _ := b.Child("jid"); attr(e, "type") != "result" || strings.TrimSpace(j.Text) != "alice@localhost/free" {
		t.Fatalf("bind after refusals: %s", e)
	}
	ts.router.mu.Lock()
	defer ts.router.mu.Unlock()
	if got := ts.router.bound; len(got) != 1 || got[0].String() != "alice@localhost/free" {
		t.Errorf("bound %v, want only alice@localhost/free", got)
	}
}

func attr(e xmpptest.Element, local string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// nsSeam is the namespace of the test's non-stanza elements (stream
// management's own are handled by c2s itself).
const nsSeam = "urn:test:seam"

// TestElements sends top-level elements that are not stanzas on a bound
// stream: a registered handler answers through the session's queue and
// the stream goes on; without one, or when the handler fails, the stream
// ends with the fitting stream error.
func TestElements(t *testing.T) {
	var seen []string // the raw elements the <r/> handler got
	var mu sync.Mutex
	elements := map[xml.Name]ElementHandler{
		{Space: nsSeam, Local: "r"}: ElementHandlerFunc(func(ctx context.Context, s *Session, el Element) error {
			if ctx.Err() != nil || ctx != s.Context() {
				return errors.New("handler without the session's live context")
			}
			mu.Lock()
			seen = append(seen, string(el.Raw))
			mu.Unlock()
			if !s.DeliverRaw([]byte(`<a xmlns='urn:test:seam' h='0'/>`)) {
				return errors.New("DeliverRaw refused")
			}
			return nil
		}),
		{Space: "urn:test", Local: "boom"}: ElementHandlerFunc(func(context.Context, *Session, Element) error {
			return streamError(stream.PolicyViolation, "boom")
		}),
		{Space: "urn:test", Local: "fail"}: ElementHandlerFunc(func(context.Context, *Session, Element) error {
			return errors.New("fake: handler failed")
		}),
	}
	tests := []struct {
		name string
		send string
		// want is the element answered and then a stanza routed, or
		// "stream-error <cond>".
		want string
	}{
		{"handled", `<r xmlns='urn:test:seam'/>`, "a"},
		{"handled, prefixed", `<sm:r xmlns:sm='urn:test:seam'></sm:r>`, "a"},
		{"no handler", `<enable xmlns='urn:test:seam'/>`, "stream-error unsupported-stanza-type"},
		{"no handler, client namespace", `<foo/>`, "stream-error unsupported-stanza-type"},
		{"handler ends the stream", `<boom xmlns='urn:test'/>`, "stream-error policy-violation"},
		{"handler fails", `<fail xmlns='urn:test'/>`, "stream-error undefined-condition"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			ts := serve(t, func(c *Config) { c.Elements = elements })
			r := xmpptest.NewRaw(t, ts.client)
			r.Bind(nil, "localhost", "PLAIN", []byte("\x00alice\x00"+goodSecret), "phone")
			if e := r.Read(); e.XMLName.Local != "message" {
				t.Fatalf("after bind: %s, want the welcome message", e)
			}
			r.Write(tc.send)
			if strings.HasPrefix(tc.want, "stream-error") {
				if got := "stream-error " + r.ExpectStreamError(); got != tc.want {
					t.Errorf("got %q, want %q", got, tc.want)
				}
				return
			}
			e := r.Read()
			if e.XMLName != (xml.Name{Space: nsSeam, Local: tc.want}) {
				t.Fatalf("answer: %s (%s), want %s", e, e.XMLName.Space, tc.want)
			}
			mu.Lock()
			got := seen
			mu.Unlock()
			if len(got) != 1 || got[0] != tc.send {
				t.Errorf("the handler got %q, want [%s]", got, tc.send)
			}
			r.Write(`<message to='bob@localhost'><body>still here</body></message>`)
			if rt := ts.router.nextRouted(t); rt.st.Name != "message" {
				t.Errorf("routed %s after the element, want the message", rt.st.Name)
			}
		})
	}
}

// TestElementsRegistration refuses, at start-up, a nil handler and one
// for a stanza's name.
func TestElementsRegistration(t *testing.T) {
	h := ElementHandlerFunc(func(context.Context, *Session, Element) error { return nil })
	for _, name := range []xml.Name{
		{Space: nsSeam, Local: "nil"},
		{Space: stanza.NSClient, Local: "message"},
		{Local: "iq"},
		{Space: nsSM, Local: "r"},
	} {
		elements := map[xml.Name]ElementHandler{name: h}
		if name.Local == "nil" {
			elements[name] = nil
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("WithDefaults accepted a handler for %v", name)
				}
			}()
			(&Config{Elements: elements}).WithDefaults()
		}()
	}
	(&Config{Elements: map[xml.Name]ElementHandler{{Space: nsSeam, Local: "r"}: h}}).WithDefaults()
}
