package auth

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"net/netip"
	"strings"
	"testing"

	"ottr.im/ottr/storage"
)

// rfcVectors are the examples of RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677
// §3 (SCRAM-SHA-256): user "user", password "pencil", 4096 iterations.
var rfcVectors = []struct {
	mech, salt, cnonce, snonce, clientFirst, serverFirst, clientFinal, serverFinal string
}{
	{
		mech: SCRAMSHA1, salt: "QSXCR+Q6sek8bf92", cnonce: "fyko+d2lbbFgONRv9qkxdawL", snonce: "3rfcNHYJY1ZVvWVs7j",
		clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	},
	{
		mech: SCRAMSHA256, salt: "W22ZaJ0SNY7soEsUEjb6gQ==", cnonce: "rOprNGfwEbeRWgbNEkqO", snonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
		serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	},
}

func vectorCreds(t testing.TB, mech, salt64 string) SCRAMCredentials {
	h, _ := SCRAMHash(mech)
	salt, _ := base64.StdEncoding.DecodeString(salt64)
	key, err := pbkdf2.Key(h, "pencil", salt, 4096, h().Size())
	if err != nil {
		t.Fatal(err)
	}
	return NewSCRAMCredentials(h, salt, 4096, key)
}

func TestSCRAMServerRFCVectors(t *testing.T) {
	for _, v := range rfcVectors {
		t.Run(v.mech, func(t *testing.T) {
			creds := vectorCreds(t, v.mech, v.salt)
			s, err := NewSCRAMServer(SCRAMConfig{
				Mechanism: v.mech,
				NoSSDP:    true,
				Lookup: func(user, authzid string) (SCRAMCredentials, error) {
					if user != "user" || authzid != "" {
						t.Errorf("Lookup(%q, %q)", user, authzid)
					}
					return creds, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			s.snonce = []byte(v.snonce)
			more, resp, err := s.Step([]byte(v.clientFirst))
			if err != nil || !more || string(resp) != v.serverFirst {
				t.Fatalf("first step = %v, %q, %v; want true, %q", more, resp, err, v.serverFirst)
			}
			more, resp, err = s.Step([]byte(v.clientFinal))
			if err != nil || more || string(resp) != v.serverFinal {
				t.Fatalf("final step = %v, %q, %v; want false, %q", more, resp, err, v.serverFinal)
			}
			if s.Username() != "user" {
				t.Errorf("Username = %q", s.Username())
			}
			if _, _, err := s.Step(nil); err == nil {
				t.Error("a third step did not fail")
			}
		})
	}
}

// TestSCRAMClientRFCVectors checks the test client against the same
// vectors, so that the tests driving the server with it mean something.
func TestSCRAMClientRFCVectors(t *testing.T) {
	for _, v := range rfcVectors {
		c := &SCRAMClient{Mechanism: v.mech, Username: "user", Password: "pencil", Nonce: v.cnonce}
		if got := string(c.First()); got != v.clientFirst {
			t.Errorf("%s: First = %q", v.mech, got)
		}
		final, err := c.Final([]byte(v.serverFirst))
		if err != nil || string(final) != v.clientFinal {
			t.Errorf("%s: Final = %q, %v", v.mech, final, err)
		}
		if err := c.Verify([]byte(v.serverFinal)); err != nil {
			t.Errorf("%s: Verify: %v", v.mech, err)
		}
		if err := c.Verify([]byte("v=" + base64.StdEncoding.EncodeToString(make([]byte, 20)))); err == nil {
			t.Errorf("%s: Verify accepted a wrong signature", v.mech)
		}
	}
}

// TestSSDPExample is XEP-0474's example: SHA-1 of
// "SCRAM-SHA-1\x1eSCRAM-SHA-1-PLUS\x1ftls-exporter\x1etls-server-end-point".
func TestSSDPExample(t *testing.T) {
	o := Offer{
		Mechanisms:      []string{"SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"},
		ChannelBindings: []string{"tls-server-end-point", "tls-exporter"},
	}
	if got, want := SSDP(sha1.New, o), "G6k/rBLDqgOhRRaCuuatSDFkJ08="; got != want {
		t.Errorf("SSDP = %q, want %q", got, want)
	}
	// Without XEP-0440 no %x1F separator.
	sum := sha256.Sum256([]byte("PLAIN\x1eSCRAM-SHA-256"))
	if got, want := SSDP(sha256.New, Offer{Mechanisms: []string{"SCRAM-SHA-256", "PLAIN"}}), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Errorf("SSDP without channel bindings = %q, want %q", got, want)
	}
}

// exchange runs one exchange of c against a server with cfg and returns
// the error of the step that failed (nil: logged in and verified).
func exchange(t *testing.T, cfg SCRAMConfig, c *SCRAMClient) error {
	t.Helper()
	s, err := NewSCRAMServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Mechanism = cfg.Mechanism
	more, resp, err := s.Step(c.First())
	if err != nil {
		return err
	}
	if !more {
		t.Fatal("no server-first-message")
	}
	final, err := c.Final(resp)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if c.SSDP != "" && c.SSDP != SSDP(s.h, cfg.Offer) {
		t.Fatalf("server sent SSDP %q, not the hash of its offer", c.SSDP)
	}
	more, resp, err = s.Step(final)
	if err != nil {
		return err
	}
	if more {
		t.Fatal("more after the final message")
	}
	if err := c.Verify(resp); err != nil {
		t.Fatalf("client: %v", err)
	}
	return nil
}

func condition(err error) string {
	var c interface{ SASLCondition() string }
	if errors.As(err, &c) {
		return c.SASLCondition()
	}
	return ""
}

func TestSCRAMChannelBinding(t *testing.T) {
	creds := func(mech string) SCRAMCredentials {
		h, _ := SCRAMHash(mech)
		salt := []byte("0123456789abcdef")
		key, _ := pbkdf2.Key(h, "secret", salt, 16, h().Size())
		return NewSCRAMCredentials(h, salt, 16, key)
	}
	plusOffer := Offer{
		Mechanisms:      []string{SCRAMSHA256Plus, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA1, "PLAIN"},
		ChannelBindings: []string{CBTLSExporter, CBTLSServerEndPoint},
	}
	cbData := map[string][]byte{CBTLSExporter: []byte("exporter-data-32-bytes-long-----"), CBTLSServerEndPoint: []byte("end-point-hash")}
	binding := func(typ string) ([]byte, error) { return cbData[typ], nil }
	for _, tc := range []struct {
		name    string
		mech    string
		offer   Offer
		cb      func(string) ([]byte, error)
		client  SCRAMClient
		wantErr string // condition, "" for success
	}{
		{"exporter", SCRAMSHA256Plus, plusOffer, binding, SCRAMClient{CBType: CBTLSExporter, CBData: cbData[CBTLSExporter]}, ""},
		{"end-point", SCRAMSHA256Plus, plusOffer, binding, SCRAMClient{CBType: CBTLSServerEndPoint, CBData: cbData[CBTLSServerEndPoint]}, ""},
		{"sha1 end-point", SCRAMSHA1Plus, plusOffer, binding, SCRAMClient{CBType: CBTLSServerEndPoint, CBData: cbData[CBTLSServerEndPoint]}, ""},
		{"no cb over TLS", SCRAMSHA256, plusOffer, binding, SCRAMClient{}, ""},
		{"mismatch", SCRAMSHA256Plus, plusOffer, binding, SCRAMClient{CBType: CBTLSExporter, CBData: []byte("another connection's data-------")}, "malformed-request"},
		{"other type's data", SCRAMSHA256Plus, plusOffer, binding, SCRAMClient{CBType: CBTLSExporter, CBData: cbData[CBTLSServerEndPoint]}, "malformed-request"},
		{"type not offered", SCRAMSHA256Plus, Offer{Mechanisms: plusOffer.Mechanisms, ChannelBindings: []string{CBTLSServerEndPoint}}, binding, SCRAMClient{CBType: CBTLSExporter, CBData: cbData[CBTLSExporter]}, "malformed-request"},
		{"tls-unique", SCRAMSHA256Plus, plusOffer, binding, SCRAMClient{CBType: "tls-unique", CBData: []byte("x")}, "malformed-request"},
		{"downgrade y", SCRAMSHA256, plusOffer, binding, SCRAMClient{GS2Flag: "y"}, "malformed-request"},
		{"y without PLUS offered", SCRAMSHA256, Offer{Mechanisms: []string{SCRAMSHA256}}, nil, SCRAMClient{GS2Flag: "y"}, ""},
		{"PLUS with n", SCRAMSHA256Plus, plusOffer, binding, SCRAMClient{}, "malformed-request"},
		{"p with plain SCRAM", SCRAMSHA256, plusOffer, binding, SCRAMClient{CBType: CBTLSExporter, CBData: cbData[CBTLSExporter]}, "malformed-request"},
		{"no channel binding here", SCRAMSHA256Plus, Offer{Mechanisms: []string{SCRAMSHA256}}, nil, SCRAMClient{CBType: CBTLSExporter, CBData: cbData[CBTLSExporter]}, "malformed-request"},
		{"wrong password", SCRAMSHA256, plusOffer, binding, SCRAMClient{Password: "wrong"}, "not-authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.client
			c.Username = "Alice"
			if c.Password == "" {
				c.Password = "secret"
			}
			err := exchange(t, SCRAMConfig{
				Mechanism: tc.mech,
				Offer:     tc.offer,
				Lookup: func(user, _ string) (SCRAMCredentials, error) {
					if user != "alice" {
						t.Errorf("username %q not nodeprepped", user)
					}
					return creds(tc.mech), nil
				},
				ChannelBinding: tc.cb,
			}, &c)
			if got := condition(err); got != tc.wantErr || (tc.wantErr == "" && err != nil) {
				t.Fatalf("err = %v (condition %q), want condition %q", err, got, tc.wantErr)
			}
		})
	}
}

func TestParseClientFirst(t *testing.T) {
	for _, tc := range []struct {
		in                  string
		ok                  bool
		flag                byte
		cb, authz, user, gs string
	}{
		{"n,,n=user,r=abc", true, 'n', "", "", "user", "n,,"},
		{"y,,n=user,r=abc", true, 'y', "", "", "user", "y,,"},
		{"p=tls-exporter,a=a=3Db=2Cc@x,n=u=2Cv,r=abc,x=ext", true, 'p', "tls-exporter", "a=b,c@x", "u,v", "p=tls-exporter,a=a=3Db=2Cc@x,"},
		{"n,,m=ext,n=user,r=abc", false, 0, "", "", "", ""},
		{"n,,n=us=er,r=abc", false, 0, "", "", "", ""},
		{"n,,n=user=2,r=abc", false, 0, "", "", "", ""},
		{"n,,n=,r=abc", false, 0, "", "", "", ""},
		{"n,,n=user,r=", false, 0, "", "", "", ""},
		{"n,,n=user,r=a b", false, 0, "", "", "", ""},
		{"n,,n=user", false, 0, "", "", "", ""},
		{"n,,r=abc,n=user", false, 0, "", "", "", ""},
		{"x,,n=user,r=abc", false, 0, "", "", "", ""},
		{"p=,,n=user,r=abc", false, 0, "", "", "", ""},
		{"p=a_b,,n=user,r=abc", false, 0, "", "", "", ""},
		{"n,b=x,n=user,r=abc", false, 0, "", "", "", ""},
		{"n,,n=user,r=abc,9=x", false, 0, "", "", "", ""},
		{"n,,n=\x00,r=abc", false, 0, "", "", "", ""},
		{"n,,n=\xff,r=abc", false, 0, "", "", "", ""},
		{"n", false, 0, "", "", "", ""},
		{"n,", false, 0, "", "", "", ""},
		{"n,,n=user,r=" + strings.Repeat("a", maxSCRAMNonce+1), false, 0, "", "", "", ""},
	} {
		cf, err := parseClientFirst([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%q: err = %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if !tc.ok {
			if condition(err) != "malformed-request" {
				t.Errorf("%q: condition %q", tc.in, condition(err))
			}
			continue
		}
		if cf.cbFlag != tc.flag || cf.cbName != tc.cb || cf.authzid != tc.authz || cf.username != tc.user || string(cf.gs2Header) != tc.gs {
			t.Errorf("%q parsed to %+v", tc.in, cf)
		}
	}
}

func TestParseClientFinal(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"c=biws,r=abc,p=AAAA", true},
		{"c=biws,r=abc,x=19C6,p=AAAA", true},
		{"c=biws,r=abc", false},
		{"c=biws,p=AAAA", false},
		{"r=abc,c=biws,p=AAAA", false},
		{"c=b!ws,r=abc,p=AAAA", false},
		{"c=biws,r=abc,p=A!AA", false},
		{"c=biws,r=abc,p=AAAA,x=1", false},
		{"c=biws,r=abc,,p=AAAA", false},
		{"p=AAAA", false},
		{"", false},
	} {
		_, err := parseClientFinal([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%q: err = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}

// accountsWith is an AccountStore of fixed hashes.
type accountsWith map[string]string

func (a accountsWith) PasswordHash(_ context.Context, _, user string) (string, error) {
	h, ok := a[user]
	if !ok {
		return "", storage.ErrNotFound
	}
	return h, nil
}

// legacyHash is a stored hash as HashPassword wrote it before SCRAM-SHA-1
// credentials were stored: the SHA-256 part alone.
func legacyHash(t *testing.T, password string) string {
	h, err := HashPassword(password, 1)
	if err != nil {
		t.Fatal(err)
	}
	first, _, ok := strings.Cut(h, hashPartSep)
	if !ok {
		t.Fatalf("HashPassword wrote no SHA-1 part: %q", h)
	}
	return first
}

func TestAuthenticatorSCRAM(t *testing.T) {
	full, err := HashPassword("secret", 1)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{
		Hosts:    map[string]TokenParams{"example.org": {}},
		Accounts: accountsWith{"alice": full, "bob": legacyHash(t, "secret"), "tok": ""},
		Failures: FailureLimits{PerAddress: 0.001, PerPair: 0.001, Burst: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := PasswordMechanisms(full); strings.Join(got, " ") != "PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS SCRAM-SHA-1 SCRAM-SHA-1-PLUS" {
		t.Errorf("PasswordMechanisms(new hash) = %v", got)
	}
	if got := PasswordMechanisms(legacyHash(t, "x")); strings.Join(got, " ") != "PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS" {
		t.Errorf("PasswordMechanisms(old hash) = %v", got)
	}
	if got := PasswordMechanisms(""); got != nil {
		t.Errorf("PasswordMechanisms(token only) = %v", got)
	}
	// PLAIN still checks both forms.
	for _, user := range []string{"alice", "bob"} {
		if err := a.Authenticate(context.Background(), Attempt{Mechanism: "PLAIN", Host: "example.org", Username: user, Secret: "secret"}); err != nil {
			t.Errorf("PLAIN %s: %v", user, err)
		}
	}
	run := func(user, password, mech string) error {
		at := Attempt{Mechanism: mech, Host: "example.org", Username: user}
		err := exchange(t, SCRAMConfig{
			Mechanism: mech,
			Offer:     Offer{Mechanisms: []string{mech}},
			Lookup: func(u, authz string) (SCRAMCredentials, error) {
				at.Username, at.Authzid = u, authz
				return a.SCRAMCredentials(context.Background(), at)
			},
		}, &SCRAMClient{Username: user, Password: password})
		return a.SCRAMDone(context.Background(), at, err)
	}
	for _, tc := range []struct {
		user, password, mech, want string
	}{
		{"alice", "secret", SCRAMSHA256, ""},
		{"alice", "secret", SCRAMSHA1, ""},
		{"bob", "secret", SCRAMSHA256, ""},
		{"bob", "secret", SCRAMSHA1, "mechanism-too-weak"},
		{"carol", "secret", SCRAMSHA256, "not-authorized"},
		{"tok", "", SCRAMSHA256, "not-authorized"},
	} {
		if got := condition(run(tc.user, tc.password, tc.mech)); got != tc.want {
			t.Errorf("%s %s: condition %q, want %q", tc.user, tc.mech, got, tc.want)
		}
	}
	// Decoys look alike for the same name and differ between names.
	d1, d2 := a.DecoyCredentials("example.org", "carol", SCRAMSHA256), a.DecoyCredentials("example.org", "carol", SCRAMSHA256)
	if string(d1.Salt) != string(d2.Salt) || string(d1.Salt) == string(a.DecoyCredentials("example.org", "dave", SCRAMSHA256).Salt) {
		t.Error("decoy salts are not stable per name")
	}
}

func TestAuthenticatorSCRAMLimits(t *testing.T) {
	full, err := HashPassword("secret", 1)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{
		Hosts:    map[string]TokenParams{"example.org": {}},
		Accounts: accountsWith{"alice": full},
		Failures: FailureLimits{PerAddress: 0.0001, Burst: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	at := Attempt{Mechanism: SCRAMSHA256, Host: "example.org", Username: "alice", Remote: netip.MustParseAddr("192.0.2.1")}
	for range 2 {
		if _, err := a.SCRAMCredentials(context.Background(), at); err != nil {
			t.Fatal(err)
		}
		a.SCRAMDone(context.Background(), at, &Error{Reason: ReasonBadCredentials})
	}
	_, err = a.SCRAMCredentials(context.Background(), at)
	if !errors.Is(err, &Error{Reason: ReasonRateLimited}) {
		t.Fatalf("after the burst of failures: %v, want rate limited", err)
	}
	at.Authzid = "mallory@example.org"
	at.Remote = netip.MustParseAddr("192.0.2.2")
	if _, err := a.SCRAMCredentials(context.Background(), at); condition(err) != "invalid-authzid" {
		t.Errorf("foreign authzid: %v", err)
	}
}

func TestStoredSCRAMMatchesPBKDF2(t *testing.T) {
	stored, err := HashPassword("pencil", 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, mech := range []string{SCRAMSHA1, SCRAMSHA256Plus} {
		creds, err := StoredSCRAM(stored, mech)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := SCRAMHash(mech)
		key, _ := pbkdf2.Key(h, "pencil", creds.Salt, 7, h().Size())
		if want := NewSCRAMCredentials(h, creds.Salt, 7, key); string(want.StoredKey) != string(creds.StoredKey) || string(want.ServerKey) != string(creds.ServerKey) {
			t.Errorf("%s: stored credentials do not match the password", mech)
		}
	}
	var _ func() hash.Hash = sha1.New
}

// FuzzSCRAMClientFirst feeds arbitrary client-first-messages to the
// server: never a panic; a message it accepts has a username that
// prepares and a well-formed answer.
func FuzzSCRAMClientFirst(f *testing.F) {
	for _, v := range rfcVectors {
		f.Add([]byte(v.clientFirst))
	}
	f.Add([]byte("p=tls-exporter,a=alice@example.org,n=alice,r=abc,x=1"))
	f.Add([]byte("y,,m=x,n=a=2Cb,r=x"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, _ := NewSCRAMServer(SCRAMConfig{
			Mechanism: SCRAMSHA256,
			Offer:     Offer{Mechanisms: []string{SCRAMSHA256}},
			Lookup: func(string, string) (SCRAMCredentials, error) {
				return vectorCreds(t, SCRAMSHA256, rfcVectors[1].salt), nil
			},
		})
		more, resp, err := s.Step(msg)
		if err != nil {
			if condition(err) == "" {
				t.Fatalf("error without a condition: %v", err)
			}
			return
		}
		if !more || !strings.HasPrefix(string(resp), "r=") || s.Username() == "" {
			t.Fatalf("accepted %q: %v %q", msg, more, resp)
		}
	})
}

// FuzzSCRAMClientFinal feeds arbitrary client-final-messages after a valid
// client-first-message: never a panic, and nothing random logs in.
func FuzzSCRAMClientFinal(f *testing.F) {
	v := rfcVectors[1]
	f.Add([]byte(v.clientFinal))
	f.Add([]byte("c=biws,r=" + v.cnonce + v.snonce + ",x=1,p=AAAA"))
	creds := vectorCreds(f, v.mech, v.salt)
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, _ := NewSCRAMServer(SCRAMConfig{
			Mechanism: v.mech,
			NoSSDP:    true,
			Lookup:    func(string, string) (SCRAMCredentials, error) { return creds, nil },
		})
		s.snonce = []byte(v.snonce)
		if _, _, err := s.Step([]byte(v.clientFirst)); err != nil {
			t.Fatal(err)
		}
		_, resp, err := s.Step(msg)
		if err == nil && string(msg) != v.clientFinal {
			// Only the one right proof verifies (extensions aside,
			// which change the AuthMessage and so the proof).
			t.Fatalf("%q logged in (%q)", msg, resp)
		}
	})
}
