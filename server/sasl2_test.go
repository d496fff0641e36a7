package server_test

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/storage/sqlite"
)

// End-to-end tests of XEP-0388 SASL2, XEP-0386 Bind2 and XEP-0484 FAST
// over real TLS sockets, spoken by hand (xmpptest.Raw) so that every
// element the server sends is seen.

const nsSASL2 = "urn:xmpp:sasl:2"

// sasl2Conn is a STARTTLS stream at the point where SASL2 is offered.
type sasl2Conn struct {
	*xmpptest.Raw
	t        *testing.T
	features xmpptest.Element
}

func dialSASL2(t *testing.T, ts *testServer) *sasl2Conn {
	t.Helper()
	r := xmpptest.DialRaw(t, ts.addr)
	r.Open(testHost)
	f := r.StartTLS(ts.tlsConfig(), testHost)
	return &sasl2Conn{Raw: r, t: t, features: f}
}

// mechanisms lists the SASL2 mechanisms, and the FAST ones inline.
func (c *sasl2Conn) mechanisms() (mechs, fast []string) {
	a, ok := c.features.Child("authentication")
	if !ok || a.XMLName.Space != nsSASL2 {
		c.t.Fatalf("no SASL2 in %s", c.features)
	}
	for _, m := range a.Children {
		switch m.XMLName.Local {
		case "mechanism":
			mechs = append(mechs, strings.TrimSpace(m.Text))
		case "inline":
			if f, ok := m.Child("fast"); ok {
				for _, fm := range f.Children {
					fast = append(fast, strings.TrimSpace(fm.Text))
				}
			}
		}
	}
	return mechs, fast
}

// endpoint is the connection's tls-server-end-point data, as a client
// computes it from the certificate it got.
func (c *sasl2Conn) endpoint() []byte {
	c.t.Helper()
	cs := c.Conn().(*tls.Conn).ConnectionState()
	cb, err := auth.TLSServerEndPoint(cs.PeerCertificates[0].Raw)
	if err != nil {
		c.t.Fatal(err)
	}
	return cb
}

// authenticate runs one SASL2 attempt of the client mechanism mech with
// the children extra in <authenticate/>; it returns the outcome
// (<success/> or <failure/>), having checked the server's final data with
// the mechanism.
func (c *sasl2Conn) authenticate(mech sasl.Mechanism, user, secret, extra string) xmpptest.Element {
	c.t.Helper()
	opts := []sasl.Option{sasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(user), []byte(secret), nil
	})}
	if strings.HasSuffix(mech.Name, "-PLUS") {
		// Channel binding with this TLS connection (tls-exporter), the
		// server having offered -PLUS.
		mechs, _ := c.mechanisms()
		opts = append(opts, sasl.TLSState(c.Conn().(*tls.Conn).ConnectionState()), sasl.RemoteMechanisms(mechs...))
	}
	client := sasl.NewClient(mech, opts...)
	_, first, err := client.Step(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.Write(fmt.Sprintf(`<authenticate xmlns='%s' mechanism='%s'><initial-response>%s</initial-response>%s</authenticate>`,
		nsSASL2, mech.Name, base64.StdEncoding.EncodeToString(first), extra))
	for {
		e := c.Read()
		switch e.XMLName.Local {
		case "challenge":
			data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Text))
			if err != nil {
				c.t.Fatal(err)
			}
			_, resp, err := client.Step(data)
			if err != nil {
				c.t.Fatalf("%s step: %v", mech.Name, err)
			}
			c.Write(fmt.Sprintf(`<response xmlns='%s'>%s</response>`, nsSASL2, base64.StdEncoding.EncodeToString(resp)))
		case "success":
			if d, ok := e.Child("additional-data"); ok {
				data, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(d.Text))
				if _, _, err := client.Step(data); err != nil {
					c.t.Fatalf("%s: the server's final data does not verify: %v", mech.Name, err)
				}
			}
			return e
		default:
			return e
		}
	}
}

// identifier is the <authorization-identifier/> of a success.
func identifier(t *testing.T, success xmpptest.Element) string {
	t.Helper()
	if success.XMLName.Local != "success" {
		t.Fatalf("want success, got %s", success)
	}
	id, ok := success.Child("authorization-identifier")
	if !ok {
		t.Fatalf("no authorization-identifier in %s", success)
	}
	return strings.TrimSpace(id.Text)
}

// condition is the SASL condition of a failure.
func condition(t *testing.T, failure xmpptest.Element) string {
	t.Helper()
	if failure.XMLName.Local != "failure" || failure.XMLName.Space != nsSASL2 {
		t.Fatalf("want a SASL2 failure, got %s", failure)
	}
	for _, c := range failure.Children {
		if c.XMLName.Local != "text" {
			return c.XMLName.Local
		}
	}
	t.Fatalf("no condition in %s", failure)
	return ""
}

// bindAfter binds resource with RFC 6120 <bind/> on the stream SASL2
// left authenticated (the features follow <success/> with no restart).
func (c *sasl2Conn) bindAfter(resource string) string {
	c.t.Helper()
	f := c.Read()
	if _, ok := f.Child("bind"); f.XMLName.Local != "features" || !ok {
		c.t.Fatalf("after SASL2 success: want features with bind, got %s", f)
	}
	if _, ok := f.Child("authentication"); ok {
		c.t.Fatalf("SASL2 offered again after success: %s", f)
	}
	return c.BindResource(resource)
}

// ping checks that the bound stream answers an iq.
func (c *sasl2Conn) ping() {
	c.t.Helper()
	c.Write(`<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	for {
		e := c.Read()
		if e.XMLName.Local == "iq" {
			for _, a := range e.Attrs {
				if a.Name.Local == "id" && a.Value == "p1" {
					return
				}
			}
		}
	}
}

func TestSASL2Mechanisms(t *testing.T) {
	ts := startServer(t, nil)
	addAccount(t, ts, "bob", "hunter2 is long")
	c := dialSASL2(t, ts)
	mechs, fast := c.mechanisms()
	for _, want := range []string{"X-TOKEN", "PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"} {
		if !slices.Contains(mechs, want) {
			t.Errorf("SASL2 mechanisms %v lack %s", mechs, want)
		}
	}
	if !slices.Equal(fast, []string{auth.FastEndp, auth.FastNone}) {
		t.Errorf("FAST mechanisms %v, want ENDP and NONE", fast)
	}
	if _, ok := c.features.Child("mechanisms"); !ok {
		t.Errorf("RFC 6120 SASL not offered beside SASL2: %s", c.features)
	}
	c.Close()

	cases := []struct {
		name         string
		mech         sasl.Mechanism
		user, secret func() string
	}{
		{"X-TOKEN", auth.XToken, func() string { return "alice" }, func() string { return ts.token(t, "alice") }},
		{"PLAIN", sasl.Plain, func() string { return "bob" }, func() string { return "hunter2 is long" }},
	}
	// The SCRAM mechanisms run the same way, with challenges and the
	// server's final data checked by mellium's client.
	scram := map[string]sasl.Mechanism{
		"SCRAM-SHA-1": sasl.ScramSha1, "SCRAM-SHA-256": sasl.ScramSha256,
		"SCRAM-SHA-1-PLUS": sasl.ScramSha1Plus, "SCRAM-SHA-256-PLUS": sasl.ScramSha256Plus,
	}
	for _, m := range mechs {
		if sm, ok := scram[m]; ok {
			cases = append(cases, struct {
				name         string
				mech         sasl.Mechanism
				user, secret func() string
			}{m, sm, func() string { return "bob" }, func() string { return "hunter2 is long" }})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialSASL2(t, ts)
			user := tc.user()
			if got := identifier(t, c.authenticate(tc.mech, user, tc.secret(), "")); got != user+"@"+testHost {
				t.Fatalf("authorization identifier %q, want the bare JID", got)
			}
			if full := c.bindAfter("r1"); full != user+"@"+testHost+"/r1" {
				t.Fatalf("bound %q", full)
			}
			c.ping()
		})
	}

	t.Run("failures then success", func(t *testing.T) {
		c := dialSASL2(t, ts)
		if got := condition(t, c.authenticate(sasl.Plain, "bob", "wrong password", "")); got != "not-authorized" {
			t.Fatalf("wrong password: %s", got)
		}
		c.Write(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='NOPE'><initial-response>AA==</initial-response></authenticate>`)
		if got := condition(t, c.Read()); got != "invalid-mechanism" {
			t.Fatalf("unknown mechanism: %s", got)
		}
		// PLAIN with no initial response: an empty challenge first.
		c.Write(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'/>`)
		if e := c.Read(); e.XMLName.Local != "challenge" || strings.TrimSpace(e.Text) != "" {
			t.Fatalf("want an empty challenge, got %s", e)
		}
		c.Write(`<response xmlns='urn:xmpp:sasl:2'>` + base64.StdEncoding.EncodeToString([]byte("\x00bob\x00hunter2 is long")) + `</response>`)
		if got := identifier(t, c.Read()); got != "bob@"+testHost {
			t.Fatalf("identifier %q", got)
		}
		c.bindAfter("r2")
	})
}

// userAgent is a SASL2 <user-agent/> with id.
func userAgent(id string) string {
	return `<user-agent id='` + id + `'><software>ottr-test</software><device>ci</device></user-agent>`
}

func TestBind2(t *testing.T) {
	ts := startServer(t, nil)
	bob := ts.online(t, "bob", "b")
	other := ts.online(t, "alice", "other")

	c := dialSASL2(t, ts)
	_, _ = c.mechanisms()
	a, _ := c.features.Child("authentication")
	inline, _ := a.Child("inline")
	bind, ok := inline.Child("bind")
	if !ok {
		t.Fatalf("Bind2 not inline: %s", a)
	}
	var vars []string
	if in, ok := bind.Child("inline"); ok {
		for _, f := range in.Children {
			for _, at := range f.Attrs {
				vars = append(vars, at.Value)
			}
		}
	}
	for _, want := range []string{"urn:xmpp:carbons:2", "urn:xmpp:sm:3", "urn:xmpp:csi:0"} {
		if !slices.Contains(vars, want) {
			t.Errorf("Bind2 inline features %v lack %s", vars, want)
		}
	}

	const agent = "d9f2bd1b-6a43-4c37-9b4e-2b3a6b1a0f11"
	success := c.authenticate(auth.XToken, "alice", ts.token(t, "alice"), userAgent(agent)+
		`<bind xmlns='urn:xmpp:bind:0'><tag>ottr-test</tag><enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>`)
	full := identifier(t, success)
	if !strings.HasPrefix(full, "alice@"+testHost+"/ottr-test/") || strings.Contains(full, agent) {
		t.Fatalf("bound %q: want the tag, a slash and an id that is not the user-agent's", full)
	}
	bound, ok := success.Child("bound")
	if !ok {
		t.Fatalf("no bound in %s", success)
	}
	enabled, ok := bound.Child("enabled")
	if !ok {
		t.Fatalf("no sm enabled in %s", bound)
	}
	var previd string
	for _, at := range enabled.Attrs {
		if at.Name.Local == "id" {
			previd = at.Value
		}
	}
	if previd == "" {
		t.Fatalf("sm enabled without resumption: %s", enabled)
	}
	if f := c.Read(); f.XMLName.Local != "features" || len(f.Children) != 0 {
		t.Fatalf("after a Bind2 success: want empty features, got %s", f)
	}
	c.Write(`<presence/>`)
	for {
		// Its own presence comes back: it is available.
		if e := c.Read(); e.XMLName.Local == "presence" && attr(e, "", "from") == full {
			break
		}
	}
	// Carbons are on: a message alice sends from another resource comes
	// as a <sent/> copy; stream management counts it.
	other.Send(`<message to='bob@localhost/b' type='chat' id='m1'><body>hi</body></message>`)
	bob.NextNamed("message", "chat")
	for {
		e := c.Read()
		if e.XMLName.Local == "message" {
			if _, ok := e.Child("sent"); !ok {
				t.Fatalf("want a carbon, got %s", e)
			}
			break
		}
	}
	c.Write(`<r xmlns='urn:xmpp:sm:3'/>`)
	for {
		e := c.Read()
		if e.XMLName.Local == "a" {
			break
		}
	}

	// The connection breaks; the client resumes inside SASL2.
	c.Close()
	c2 := dialSASL2(t, ts)
	success = c2.authenticate(auth.XToken, "alice", ts.token(t, "alice"), userAgent(agent)+
		`<resume xmlns='urn:xmpp:sm:3' previd='`+previd+`' h='0'/><bind xmlns='urn:xmpp:bind:0'><tag>ottr-test</tag></bind>`)
	if got := identifier(t, success); got != full {
		t.Fatalf("resumed as %q, want %q", got, full)
	}
	if _, ok := success.Child("resumed"); !ok {
		t.Fatalf("no resumed in %s", success)
	}
	if _, ok := success.Child("bound"); ok {
		t.Fatalf("bound although resumed: %s", success)
	}
	c2.ping()

	// A new login of the same client gets the same resource: the earlier
	// session is replaced (conflict).
	c3 := dialSASL2(t, ts)
	again := identifier(t, c3.authenticate(auth.XToken, "alice", ts.token(t, "alice"), userAgent(agent)+
		`<bind xmlns='urn:xmpp:bind:0'><tag>ottr-test</tag></bind>`))
	if again != full {
		t.Fatalf("same client bound %q, then %q", full, again)
	}
	if cond := c2.ExpectStreamError(); cond != "conflict" {
		t.Fatalf("replaced session ended with %q, want conflict", cond)
	}
	c3.Read() // features
	c3.ping()

	// A failed resumption is told inside <success/>, and Bind2 goes on.
	c4 := dialSASL2(t, ts)
	success = c4.authenticate(auth.XToken, "alice", ts.token(t, "alice"),
		`<resume xmlns='urn:xmpp:sm:3' previd='nope' h='0'/><bind xmlns='urn:xmpp:bind:0'/>`)
	if _, ok := success.Child("failed"); !ok {
		t.Fatalf("no failed resumption in %s", success)
	}
	if got := identifier(t, success); !strings.HasPrefix(got, "alice@"+testHost+"/") {
		t.Fatalf("not bound: %q", got)
	}
}

// htInitiator is what a FAST client sends: authcid NUL HMAC(token,
// "Initiator" || cb).
func htInitiator(user, token string, cb []byte) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("Initiator"))
	m.Write(cb)
	return append([]byte(user+"\x00"), m.Sum(nil)...)
}

// fastLogin logs in with a FAST token and returns the outcome, having
// checked the server's final message when it succeeded.
func (c *sasl2Conn) fastLogin(mech, user, token string, cb []byte, agent, fast string) xmpptest.Element {
	c.t.Helper()
	c.Write(fmt.Sprintf(`<authenticate xmlns='%s' mechanism='%s'><initial-response>%s</initial-response>%s%s</authenticate>`,
		nsSASL2, mech, base64.StdEncoding.EncodeToString(htInitiator(user, token, cb)), userAgent(agent), fast))
	e := c.Read()
	if e.XMLName.Local == "success" {
		d, ok := e.Child("additional-data")
		if !ok {
			c.t.Fatalf("FAST success without the server's final message: %s", e)
		}
		got, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(d.Text))
		m := hmac.New(sha256.New, []byte(token))
		m.Write([]byte("Responder"))
		m.Write(cb)
		if !hmac.Equal(got, m.Sum(nil)) {
			c.t.Fatalf("the server's final message does not verify")
		}
	}
	return e
}

// fastToken is the <token/> of a success, "" without one, after checking
// its expiry.
func fastToken(t *testing.T, success xmpptest.Element, lifetime time.Duration) string {
	t.Helper()
	tok, ok := success.Child("token")
	if !ok {
		return ""
	}
	var token, expiry string
	for _, a := range tok.Attrs {
		switch a.Name.Local {
		case "token":
			token = a.Value
		case "expiry":
			expiry = a.Value
		}
	}
	exp, err := time.Parse(time.RFC3339, expiry)
	if err != nil || token == "" {
		t.Fatalf("token element %s", tok)
	}
	if d := time.Until(exp); d < lifetime-time.Minute || d > lifetime+time.Minute {
		t.Fatalf("token expires in %v, want %v", d, lifetime)
	}
	return token
}

// TestFAST: tokens replaced at every use (fast_token_rotation = 0s);
// TestFASTRotation has the default.
func TestFAST(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Limits.FastTokenRotation = config.Duration{} })
	const lifetime = 14 * 24 * time.Hour
	const agent = "6b0e1f7c-0d8a-4a55-a5a8-0c7b1c2d3e4f"

	// An X-TOKEN login asks for a token.
	c := dialSASL2(t, ts)
	success := c.authenticate(auth.XToken, "alice", ts.token(t, "alice"),
		userAgent(agent)+`<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>`)
	tokA := fastToken(t, success, lifetime)
	if tokA == "" {
		t.Fatalf("no token in %s", success)
	}
	c.bindAfter("x")
	c.Close()

	login := func(token, fast string) xmpptest.Element {
		t.Helper()
		c := dialSASL2(t, ts)
		defer c.Close()
		return c.fastLogin(auth.FastNone, "alice", token, nil, agent, fast)
	}
	// Next connection: FAST only. The success carries the next token.
	success = login(tokA, `<fast xmlns='urn:xmpp:fast:0' count='1'/>`)
	if got := identifier(t, success); got != "alice@"+testHost {
		t.Fatalf("FAST login as %q", got)
	}
	tokB := fastToken(t, success, lifetime)
	if tokB == "" || tokB == tokA {
		t.Fatalf("FAST login not rotated: %s", success)
	}
	// The same count again is a replay.
	if got := condition(t, login(tokA, `<fast xmlns='urn:xmpp:fast:0' count='1'/>`)); got != "not-authorized" {
		t.Fatalf("replayed count: %s", got)
	}
	// Until the new token is used, the old one still logs in (the new
	// one may have been lost with the connection).
	success = login(tokA, `<fast xmlns='urn:xmpp:fast:0' count='2'/>`)
	tokC := fastToken(t, success, lifetime)
	// tokB was never used: tokC replaced it.
	if got := condition(t, login(tokB, `<fast xmlns='urn:xmpp:fast:0'/>`)); got != "not-authorized" {
		t.Fatalf("unused superseded token: %s", got)
	}
	// Using tokC retires tokA.
	success = login(tokC, `<fast xmlns='urn:xmpp:fast:0'/>`)
	tokD := fastToken(t, success, lifetime)
	if got := condition(t, login(tokA, `<fast xmlns='urn:xmpp:fast:0' count='3'/>`)); got != "not-authorized" {
		t.Fatalf("token older than the one used: %s", got)
	}
	// Another client, or another mechanism, cannot use it.
	{
		c := dialSASL2(t, ts)
		if got := condition(t, c.fastLogin(auth.FastNone, "alice", tokD, nil, "another-agent", "")); got != "not-authorized" {
			t.Fatalf("token of another client: %s", got)
		}
		if got := condition(t, c.fastLogin(auth.FastEndp, "alice", tokD, c.endpoint(), agent, "")); got != "not-authorized" {
			t.Fatalf("token of another mechanism: %s", got)
		}
		c.Close()
	}
	// Invalidation: the login works, no new token, and the token is gone.
	success = login(tokD, `<fast xmlns='urn:xmpp:fast:0' invalidate='true'/>`)
	if fastToken(t, success, lifetime) != "" {
		t.Fatalf("a token after invalidation: %s", success)
	}
	if got := condition(t, login(tokD, "")); got != "not-authorized" {
		t.Fatalf("invalidated token: %s", got)
	}

	t.Run("ENDP", func(t *testing.T) {
		c := dialSASL2(t, ts)
		tok := fastToken(t, c.authenticate(auth.XToken, "alice", ts.token(t, "alice"),
			userAgent("endp-agent")+`<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-ENDP'/>`), lifetime)
		c.Close()
		c = dialSASL2(t, ts)
		if got := condition(t, c.fastLogin(auth.FastEndp, "alice", tok, []byte("not the certificate's"), "endp-agent", "")); got != "not-authorized" {
			t.Fatalf("wrong channel binding: %s", got)
		}
		success := c.fastLogin(auth.FastEndp, "alice", tok, c.endpoint(), "endp-agent", "")
		identifier(t, success)
		if fastToken(t, success, lifetime) == "" {
			t.Fatalf("ENDP login not rotated: %s", success)
		}
	})

	t.Run("expired", func(t *testing.T) {
		c := dialSASL2(t, ts)
		tok := fastToken(t, c.authenticate(auth.XToken, "alice", ts.token(t, "alice"),
			userAgent("old-agent")+`<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>`), lifetime)
		c.Close()
		// Two weeks pass for the token.
		db, err := sql.Open("sqlite", ts.cfg.DatabasePath())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`UPDATE fast_tokens SET expires = ? WHERE agent = 'old-agent'`, time.Now().Add(-time.Second).Unix()); err != nil {
			t.Fatal(err)
		}
		c = dialSASL2(t, ts)
		if got := condition(t, c.fastLogin(auth.FastNone, "alice", tok, nil, "old-agent", "")); got != "credentials-expired" {
			t.Fatalf("expired token: %s, want credentials-expired (XEP-0484 §4.2)", got)
		}
	})

	t.Run("user del", func(t *testing.T) {
		c := dialSASL2(t, ts)
		tok := fastToken(t, c.authenticate(auth.XToken, "carol", ts.token(t, "carol"),
			userAgent(agent)+`<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>`), lifetime)
		c.bindAfter("c") // a token user's account exists once bound
		c.Close()
		st, err := sqlite.Open(context.Background(), ts.cfg.DatabasePath())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.DeleteAccount(context.Background(), testHost, "carol"); err != nil {
			t.Fatal(err)
		}
		c = dialSASL2(t, ts)
		if got := condition(t, c.fastLogin(auth.FastNone, "carol", tok, nil, agent, "")); got != "not-authorized" {
			t.Fatalf("token of a deleted account: %s", got)
		}
	})

	t.Run("password change", func(t *testing.T) {
		addAccount(t, ts, "erin", "old password here")
		c := dialSASL2(t, ts)
		tok := fastToken(t, c.authenticate(sasl.Plain, "erin", "old password here",
			userAgent(agent)+`<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>`), lifetime)
		c.Close()
		st, err := sqlite.Open(context.Background(), ts.cfg.DatabasePath())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		h, err := auth.HashPassword("new password here", 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SetPassword(context.Background(), testHost, "erin", h); err != nil {
			t.Fatal(err)
		}
		c = dialSASL2(t, ts)
		if got := condition(t, c.fastLogin(auth.FastNone, "erin", tok, nil, agent, "")); got != "not-authorized" {
			t.Fatalf("token after a password change: %s", got)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		c := dialSASL2(t, ts)
		tok := fastToken(t, c.authenticate(auth.XToken, "dave", ts.token(t, "dave"),
			userAgent(agent)+`<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>`), lifetime)
		c.Close()
		st, err := sqlite.Open(context.Background(), ts.cfg.DatabasePath())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if n, err := st.DeleteFastTokens(context.Background(), testHost, "dave"); err != nil || n != 1 {
			t.Fatalf("DeleteFastTokens = %d, %v", n, err)
		}
		c = dialSASL2(t, ts)
		if got := condition(t, c.fastLogin(auth.FastNone, "dave", tok, nil, agent, "")); got != "not-authorized" {
			t.Fatalf("revoked token: %s", got)
		}
	})
}

// TestFASTRotation: with the default fast_token_rotation (24h), a token
// logs in again and again with no new one in <success/>, until it is a
// day old: then the success carries the next, and the older token logs
// in until the new one was used.
func TestFASTRotation(t *testing.T) {
	ts := startServer(t, nil)
	const lifetime = 14 * 24 * time.Hour
	const agent = "0d7f3c1e-9a2b-4c5d-8e6f-7a8b9c0d1e2f"
	c := dialSASL2(t, ts)
	tokA := fastToken(t, c.authenticate(auth.XToken, "alice", ts.token(t, "alice"),
		userAgent(agent)+`<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>`), lifetime)
	c.Close()
	login := func(token string) xmpptest.Element {
		t.Helper()
		c := dialSASL2(t, ts)
		defer c.Close()
		return c.fastLogin(auth.FastNone, "alice", token, nil, agent, `<fast xmlns='urn:xmpp:fast:0'/>`)
	}
	for i := range 3 {
		success := login(tokA)
		identifier(t, success)
		if tok := fastToken(t, success, lifetime); tok != "" {
			t.Fatalf("login %d with a fresh token got a new one", i)
		}
	}
	// A day passes for the token.
	db, err := sql.Open("sqlite", ts.cfg.DatabasePath())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE fast_tokens SET created = created - ? WHERE agent = ?`,
		int64(24*time.Hour+time.Minute), agent); err != nil {
		t.Fatal(err)
	}
	tokB := fastToken(t, login(tokA), lifetime)
	if tokB == "" || tokB == tokA {
		t.Fatal("a day-old token was not replaced")
	}
	// The success may be lost: tokA still logs in (and is replaced again).
	tokC := fastToken(t, login(tokA), lifetime)
	if tokC == "" {
		t.Fatal("a day-old token was not replaced the second time")
	}
	if got := condition(t, login(tokB)); got != "not-authorized" {
		t.Fatalf("unused superseded token: %s", got)
	}
	if tok := fastToken(t, login(tokC), lifetime); tok != "" {
		t.Fatal("a new token was replaced at its first use")
	}
	if got := condition(t, login(tokA)); got != "not-authorized" {
		t.Fatalf("the token before the one used: %s", got)
	}
}

// TestFASTNeedsTLS: on a stream left unencrypted (require_tls off), SASL2
// is offered but no FAST mechanism (XEP-0484 §6), and a FAST login is an
// unknown mechanism.
func TestFASTNeedsTLS(t *testing.T) {
	no := false
	ts := startServer(t, func(c *config.Config) { c.C2S.RequireTLS = &no })
	r := xmpptest.DialRaw(t, ts.addr)
	c := &sasl2Conn{Raw: r, t: t, features: r.Open(testHost)}
	mechs, fast := c.mechanisms()
	if !slices.Contains(mechs, "X-TOKEN") || len(fast) != 0 {
		t.Fatalf("plaintext stream offers SASL2 %v and FAST %v, want FAST none", mechs, fast)
	}
	if got := condition(t, c.fastLogin(auth.FastNone, "alice", "whatever", nil, "agent", "")); got != "invalid-mechanism" {
		t.Fatalf("FAST over plaintext: %s", got)
	}
}

// TestBind2InactiveCSI: a session bound by Bind2 with <inactive
// xmlns='urn:xmpp:csi:0'/> inline starts inactive (XEP-0386 §2.2): its
// contacts' presence updates are held and collapsed until it says
// <active/>.
func TestBind2InactiveCSI(t *testing.T) {
	ts := startServer(t, nil)
	bob := ts.online(t, "bob", "b")
	first := ts.online(t, "alice", "first")
	xmpptest.SubscribeBoth(t, first, bob)
	first.Close()

	c := dialSASL2(t, ts)
	full := identifier(t, c.authenticate(auth.XToken, "alice", ts.token(t, "alice"),
		`<bind xmlns='urn:xmpp:bind:0'><inactive xmlns='urn:xmpp:csi:0'/></bind>`))
	c.Read() // features
	c.Write(`<presence/>`)
	bob.PresenceFrom(full, "")
	bob.Send(`<presence><status>one</status></presence>`)
	bob.Send(`<presence><status>two</status></presence>`)
	bob.IQ(`<iq type='get' id='bp' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "bp") // both routed
	c.Write(`<active xmlns='urn:xmpp:csi:0'/><iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>`)
	var statuses []string
	for {
		e := c.Read()
		if e.XMLName.Local == "iq" && attr(e, "", "id") == "after" {
			break
		}
		if e.XMLName.Local == "presence" && attr(e, "", "from") == "bob@localhost/b" {
			st, _ := e.Child("status")
			statuses = append(statuses, strings.TrimSpace(st.Text))
		}
	}
	if !slices.Equal(statuses, []string{"two"}) {
		t.Fatalf("bob's presence while alice was inactive: %q, want only the latest, \"two\"", statuses)
	}
}

// BenchmarkLoginSASL2 is BenchmarkLogin's full token login done with
// SASL2 and Bind2 (one round trip after TLS instead of three): the
// server's CPU per login, for the same comparison with BenchmarkBareTLS.
func BenchmarkLoginSASL2(b *testing.B) {
	ts := startServer(b, liftConnectionRate)
	runBenchClient(b, "sasl2", ts.addr, ts.started.CertFile)
}

// benchSASL2Login logs in over STARTTLS with X-TOKEN in SASL2, bound by
// Bind2 in the same request, as benchLogin does with RFC 6120 SASL.
func benchSASL2Login(connect connectFunc, addr string, cfg *tls.Config, user, token string) error {
	raw, tc, err := connect(addr, cfg)
	if err != nil {
		return err
	}
	defer raw.Close()
	r := bufio.NewReader(tc)
	authenticate := "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='X-TOKEN'><initial-response>" +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+token)) +
		"</initial-response><bind xmlns='urn:xmpp:bind:0'/></authenticate>"
	for _, s := range []struct{ send, until string }{
		{benchHeader, "</stream:features>"},
		{authenticate, "<stream:features/>"},
		{"</stream:stream>", "</stream:stream>"},
	} {
		if err := sendUntil(tc, r, s.send, s.until); err != nil {
			return err
		}
	}
	return nil
}
