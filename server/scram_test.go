package server_test

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"hash"
	"slices"
	"strings"
	"testing"

	"mellium.im/sasl"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/internal/xmpptest"
	"ottr.im/ottr/storage/sqlite"
)

// TestSCRAMMellium logs in with each SCRAM mechanism as mellium's client
// does it (the -PLUS ones bind to tls-exporter on TLS 1.3), and checks a
// wrong password is refused.
func TestSCRAMMellium(t *testing.T) {
	ts := startServer(t, nil)
	addAccount(t, ts, "bob", "correct horse")
	for _, mech := range []sasl.Mechanism{sasl.ScramSha256, sasl.ScramSha1, sasl.ScramSha256Plus, sasl.ScramSha1Plus} {
		t.Run(mech.Name, func(t *testing.T) {
			c, err := ts.login(t, "bob", "r-"+mech.Name, mech, "correct horse")
			if err != nil {
				t.Fatal(err)
			}
			if want := "bob@" + testHost + "/r-" + mech.Name; c.JID.String() != want {
				t.Errorf("bound %s, want %s", c.JID, want)
			}
			c.Close()
			if _, err := ts.login(t, "bob", "", mech, "wrong horse"); err == nil || !strings.Contains(err.Error(), "not-authorized") {
				t.Errorf("wrong password: %v, want not-authorized", err)
			}
		})
	}
}

// scramFeatures is what a client saw before SASL.
type scramFeatures struct {
	mechanisms, channelBindings []string
}

func parseSCRAMFeatures(t *testing.T, f xmpptest.Element) scramFeatures {
	t.Helper()
	var sf scramFeatures
	mechs, ok := f.Child("mechanisms")
	if !ok {
		t.Fatalf("no mechanisms in %s", f)
	}
	for _, m := range mechs.Children {
		sf.mechanisms = append(sf.mechanisms, strings.TrimSpace(m.Text))
	}
	for _, c := range f.Children {
		if c.XMLName.Local != "sasl-channel-binding" {
			continue
		}
		if c.XMLName.Space != "urn:xmpp:sasl-cb:0" {
			t.Errorf("sasl-channel-binding in %q", c.XMLName.Space)
		}
		for _, cb := range c.Children {
			for _, a := range cb.Attrs {
				if a.Name.Local == "type" {
					sf.channelBindings = append(sf.channelBindings, a.Value)
				}
			}
		}
	}
	return sf
}

// scramRaw runs a SCRAM exchange by hand on r and returns the server's
// last element (success or failure) and the client (with the SSDP hash
// the server sent).
func scramRaw(t *testing.T, r *xmpptest.Raw, c *auth.SCRAMClient) xmpptest.Element {
	t.Helper()
	e := r.Auth(c.Mechanism, c.First())
	if e.XMLName.Local != "challenge" {
		return e
	}
	first, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Text))
	if err != nil {
		t.Fatalf("challenge: %v", err)
	}
	final, err := c.Final(first)
	if err != nil {
		t.Fatalf("client: %v (server-first %q)", err, first)
	}
	r.Write(fmt.Sprintf(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>`, base64.StdEncoding.EncodeToString(final)))
	e = r.Read()
	if e.XMLName.Local == "success" {
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Text))
		if err != nil {
			t.Fatalf("success data: %v", err)
		}
		if err := c.Verify(data); err != nil {
			t.Fatalf("server signature: %v", err)
		}
	}
	return e
}

// failureCondition is the condition of a SASL <failure/> ("" for none).
func failureCondition(e xmpptest.Element) string {
	if e.XMLName.Local != "failure" {
		return ""
	}
	for _, c := range e.Children {
		if c.XMLName.Local != "text" {
			return c.XMLName.Local
		}
	}
	return ""
}

func ssdpHash(h func() hash.Hash, sf scramFeatures) string {
	return auth.SSDP(h, auth.Offer{Mechanisms: sf.mechanisms, ChannelBindings: sf.channelBindings})
}

// dialSCRAM opens a stream, upgrades it with tlsCfg and returns it with
// the features offered.
func dialSCRAM(t *testing.T, ts *testServer, tlsCfg *tls.Config) (*xmpptest.Raw, scramFeatures, tls.ConnectionState) {
	t.Helper()
	r := xmpptest.DialRaw(t, ts.addr)
	r.Open(testHost)
	sf := parseSCRAMFeatures(t, r.StartTLS(tlsCfg, testHost))
	return r, sf, r.Conn().(*tls.Conn).ConnectionState()
}

// TestSCRAMPlusByHand binds to each channel-binding type over real TLS,
// on TLS 1.3 and 1.2: XEP-0440 lists what the connection offers
// (tls-exporter on TLS 1.3 only), the login works, and the XEP-0474 hash
// in the server-first-message is the hash of what the client saw.
func TestSCRAMPlusByHand(t *testing.T) {
	ts := startServer(t, nil)
	addAccount(t, ts, "carol", "pencil and paper")
	for _, tc := range []struct {
		name    string
		version uint16
		mech    string
		cbType  string
		wantCBs []string
	}{
		{"sha256 exporter tls1.3", tls.VersionTLS13, auth.SCRAMSHA256Plus, auth.CBTLSExporter, []string{"tls-exporter", "tls-server-end-point"}},
		{"sha256 end-point tls1.3", tls.VersionTLS13, auth.SCRAMSHA256Plus, auth.CBTLSServerEndPoint, []string{"tls-exporter", "tls-server-end-point"}},
		{"sha1 exporter tls1.3", tls.VersionTLS13, auth.SCRAMSHA1Plus, auth.CBTLSExporter, []string{"tls-exporter", "tls-server-end-point"}},
		{"sha1 end-point tls1.2", tls.VersionTLS12, auth.SCRAMSHA1Plus, auth.CBTLSServerEndPoint, []string{"tls-server-end-point"}},
		{"sha256 end-point tls1.2", tls.VersionTLS12, auth.SCRAMSHA256Plus, auth.CBTLSServerEndPoint, []string{"tls-server-end-point"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ts.tlsConfig().Clone()
			cfg.MaxVersion = tc.version
			r, sf, cs := dialSCRAM(t, ts, cfg)
			if !slices.Equal(sf.channelBindings, tc.wantCBs) {
				t.Errorf("channel bindings %v, want %v", sf.channelBindings, tc.wantCBs)
			}
			for _, m := range []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "X-TOKEN", "PLAIN"} {
				if !slices.Contains(sf.mechanisms, m) {
					t.Errorf("%s not offered: %v", m, sf.mechanisms)
				}
			}
			var data []byte
			var err error
			if tc.cbType == auth.CBTLSExporter {
				data, err = auth.TLSExporter(&cs)
			} else {
				data, err = auth.TLSServerEndPoint(cs.PeerCertificates[0].Raw)
			}
			if err != nil {
				t.Fatal(err)
			}
			c := &auth.SCRAMClient{Mechanism: tc.mech, Username: "carol", Password: "pencil and paper", CBType: tc.cbType, CBData: data}
			if e := scramRaw(t, r, c); e.XMLName.Local != "success" {
				t.Fatalf("login: %s", e)
			}
			h, _ := auth.SCRAMHash(tc.mech)
			if c.SSDP == "" || c.SSDP != ssdpHash(h, sf) {
				t.Errorf("server's SSDP hash %q, want %q, the hash of what the client saw", c.SSDP, ssdpHash(h, sf))
			}
			r.Open(testHost)
			r.Write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>plus</resource></bind></iq>`)
			if e := r.Read(); !strings.Contains(e.String(), "carol@"+testHost+"/plus") {
				t.Errorf("bind: %s", e)
			}
		})
	}
}

// TestSCRAMChannelBindingMismatch refuses a client whose binding data are
// not those of its own TLS connection (a MITM relaying the exchange has
// another connection), and then lets the right one in on the same
// stream.
func TestSCRAMChannelBindingMismatch(t *testing.T) {
	ts := startServer(t, nil)
	addAccount(t, ts, "dave", "pencil and paper")
	_, _, other := dialSCRAM(t, ts, ts.tlsConfig())
	otherExporter, err := auth.TLSExporter(&other)
	if err != nil {
		t.Fatal(err)
	}
	r, _, cs := dialSCRAM(t, ts, ts.tlsConfig())
	own, _ := auth.TLSExporter(&cs)
	endpoint, _ := auth.TLSServerEndPoint(cs.PeerCertificates[0].Raw)
	for _, tc := range []struct {
		name   string
		cbType string
		data   []byte
	}{
		{"another connection's exporter", auth.CBTLSExporter, otherExporter},
		{"end-point hash as exporter", auth.CBTLSExporter, endpoint},
		{"exporter as end-point", auth.CBTLSServerEndPoint, own},
		{"tls-unique", "tls-unique", own},
	} {
		c := &auth.SCRAMClient{Mechanism: auth.SCRAMSHA256Plus, Username: "dave", Password: "pencil and paper", CBType: tc.cbType, CBData: tc.data}
		e := scramRaw(t, r, c)
		if got := failureCondition(e); got != "malformed-request" {
			t.Errorf("%s: %s, want failure malformed-request", tc.name, e)
		}
		if txt, _ := e.Child("text"); !strings.Contains(txt.Text, "channel") {
			t.Errorf("%s: failure text %q does not say what is wrong", tc.name, txt.Text)
		}
	}
	c := &auth.SCRAMClient{Mechanism: auth.SCRAMSHA256Plus, Username: "dave", Password: "pencil and paper", CBType: auth.CBTLSExporter, CBData: own}
	if e := scramRaw(t, r, c); e.XMLName.Local != "success" {
		t.Fatalf("the right binding after the refusals: %s", e)
	}
}

// TestSCRAMDowngrade: a client that says "y" (it supports channel binding
// but believes the server does not) is refused when the server offered
// -PLUS, as RFC 5802 wants; and the XEP-0474 hash lets a client detect a
// list stripped of its -PLUS mechanisms and channel-binding types.
func TestSCRAMDowngrade(t *testing.T) {
	ts := startServer(t, nil)
	addAccount(t, ts, "erin", "pencil and paper")
	r, sf, _ := dialSCRAM(t, ts, ts.tlsConfig())
	c := &auth.SCRAMClient{Mechanism: auth.SCRAMSHA256, Username: "erin", Password: "pencil and paper", GS2Flag: "y"}
	if e := scramRaw(t, r, c); failureCondition(e) != "malformed-request" {
		t.Fatalf(`"y" with -PLUS offered: %s, want failure malformed-request`, e)
	}

	// What a MITM shows the client: no -PLUS, no XEP-0440 list.
	stripped := scramFeatures{}
	for _, m := range sf.mechanisms {
		if !strings.HasSuffix(m, "-PLUS") {
			stripped.mechanisms = append(stripped.mechanisms, m)
		}
	}
	for _, mech := range []string{auth.SCRAMSHA256, auth.SCRAMSHA1} {
		h := sha256.New
		if mech == auth.SCRAMSHA1 {
			h = sha1.New
		}
		c := &auth.SCRAMClient{Mechanism: mech, Username: "erin", Password: "pencil and paper"}
		if e := scramRaw(t, r, c); e.XMLName.Local != "success" && mech == auth.SCRAMSHA1 {
			t.Fatalf("%s: %s", mech, e)
		}
		if c.SSDP != ssdpHash(h, sf) {
			t.Errorf("%s: SSDP %q is not the hash of the list offered", mech, c.SSDP)
		}
		if c.SSDP == ssdpHash(h, stripped) {
			t.Errorf("%s: SSDP matches a stripped list: a downgrade would go unseen", mech)
		}
		if mech == auth.SCRAMSHA256 {
			// Logged in: open a new stream for the next round.
			r, sf, _ = dialSCRAM(t, ts, ts.tlsConfig())
		}
	}
}

// TestSCRAMSHA1Credentials: an account whose password was stored before
// SCRAM-SHA-1 credentials were (only the SHA-256 part) fails SCRAM-SHA-1
// with mechanism-too-weak and still logs in with SCRAM-SHA-256; after a
// password change it has both.
func TestSCRAMSHA1Credentials(t *testing.T) {
	ts := startServer(t, nil)
	store, err := sqlite.Open(context.Background(), ts.cfg.DatabasePath())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	h, err := auth.HashPassword("old password", 0)
	if err != nil {
		t.Fatal(err)
	}
	old, _, _ := strings.Cut(h, ";")
	if err := store.CreateAccount(context.Background(), testHost, "frank", old); err != nil {
		t.Fatal(err)
	}
	_, err = ts.login(t, "frank", "", sasl.ScramSha1, "old password")
	if err == nil || !strings.Contains(err.Error(), "mechanism-too-weak") {
		t.Fatalf("SCRAM-SHA-1 without SHA-1 credentials: %v, want mechanism-too-weak", err)
	}
	if _, err := ts.login(t, "frank", "", sasl.ScramSha256, "old password"); err != nil {
		t.Fatalf("SCRAM-SHA-256: %v", err)
	}
	h, err = auth.HashPassword("new password", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetPassword(context.Background(), testHost, "frank", h); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.login(t, "frank", "", sasl.ScramSha1, "new password"); err != nil {
		t.Fatalf("SCRAM-SHA-1 after the password change: %v", err)
	}
	// Unknown users and token-only accounts fail like a wrong password.
	ts.mustLogin(t, "tokenuser", "")
	for _, user := range []string{"nobody", "tokenuser"} {
		if _, err := ts.login(t, user, "", sasl.ScramSha256, "x"); err == nil || !strings.Contains(err.Error(), "not-authorized") {
			t.Errorf("%s: %v, want not-authorized", user, err)
		}
	}
}

// TestSCRAMNoPlusWithoutTLS: a stream without TLS (require_tls off)
// offers SCRAM without -PLUS and lists no channel-binding types; the
// XEP-0474 hash covers that list.
func TestSCRAMNoPlusWithoutTLS(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.C2S.RequireTLS = new(bool) })
	addAccount(t, ts, "gina", "pencil and paper")
	r := xmpptest.DialRaw(t, ts.addr)
	sf := parseSCRAMFeatures(t, r.Open(testHost))
	if len(sf.channelBindings) != 0 || slices.ContainsFunc(sf.mechanisms, func(m string) bool { return strings.HasSuffix(m, "-PLUS") }) {
		t.Fatalf("without TLS: mechanisms %v, channel bindings %v", sf.mechanisms, sf.channelBindings)
	}
	c := &auth.SCRAMClient{Mechanism: auth.SCRAMSHA256Plus, Username: "gina", Password: "pencil and paper", CBType: auth.CBTLSExporter, CBData: []byte("x")}
	if e := r.Auth(c.Mechanism, c.First()); failureCondition(e) != "invalid-mechanism" {
		t.Errorf("-PLUS without TLS: %s, want invalid-mechanism", e)
	}
	c = &auth.SCRAMClient{Mechanism: auth.SCRAMSHA256, Username: "gina", Password: "pencil and paper"}
	if e := scramRaw(t, r, c); e.XMLName.Local != "success" {
		t.Fatalf("SCRAM-SHA-256 without TLS: %s", e)
	}
	if c.SSDP != ssdpHash(sha256.New, sf) {
		t.Errorf("SSDP %q, want the hash of %v", c.SSDP, sf.mechanisms)
	}
}

// TestSCRAMSASL2SSDP: over SASL2 (XEP-0388) the XEP-0474 hash covers
// the mechanisms of SASL2's <authentication/> and the XEP-0440 types, and
// the server's signature comes in <additional-data/>.
func TestSCRAMSASL2SSDP(t *testing.T) {
	ts := startServer(t, nil)
	addAccount(t, ts, "hana", "pencil and paper")
	r := xmpptest.DialRaw(t, ts.addr)
	r.Open(testHost)
	f := r.StartTLS(ts.tlsConfig(), testHost)
	sf := parseSCRAMFeatures(t, f)
	authn, ok := f.Child("authentication")
	if !ok {
		t.Fatalf("no SASL2 in %s", f)
	}
	var sasl2 scramFeatures
	sasl2.channelBindings = sf.channelBindings
	for _, m := range authn.Children {
		if m.XMLName.Local == "mechanism" {
			sasl2.mechanisms = append(sasl2.mechanisms, strings.TrimSpace(m.Text))
		}
	}
	cs := r.Conn().(*tls.Conn).ConnectionState()
	data, err := auth.TLSExporter(&cs)
	if err != nil {
		t.Fatal(err)
	}
	c := &auth.SCRAMClient{Mechanism: auth.SCRAMSHA256Plus, Username: "hana", Password: "pencil and paper", CBType: auth.CBTLSExporter, CBData: data}
	r.Write(fmt.Sprintf(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='%s'><initial-response>%s</initial-response></authenticate>`,
		c.Mechanism, base64.StdEncoding.EncodeToString(c.First())))
	e := r.Read()
	if e.XMLName.Local != "challenge" {
		t.Fatalf("SASL2: %s", e)
	}
	first, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Text))
	final, err := c.Final(first)
	if err != nil {
		t.Fatal(err)
	}
	if want := ssdpHash(sha256.New, sasl2); c.SSDP != want {
		t.Errorf("SASL2 SSDP %q, want %q (the hash of SASL2's list %v)", c.SSDP, want, sasl2.mechanisms)
	}
	r.Write(`<response xmlns='urn:xmpp:sasl:2'>` + base64.StdEncoding.EncodeToString(final) + `</response>`)
	e = r.Read()
	if e.XMLName.Local != "success" {
		t.Fatalf("SASL2: %s", e)
	}
	add, _ := e.Child("additional-data")
	v, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(add.Text))
	if err := c.Verify(v); err != nil {
		t.Errorf("server signature in <additional-data/>: %v", err)
	}
}
