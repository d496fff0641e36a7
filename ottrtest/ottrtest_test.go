package ottrtest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/config"
	"ottr.im/ottr/ottrtest"
	"ottr.im/ottr/storage"
)

// login connects to addr (STARTTLS, or TLS at once when direct) and logs
// in as user with mech and secret, returning the bound JID.
func login(t *testing.T, addr string, direct bool, tlsCfg *tls.Config, user string, mech sasl.Mechanism, secret string) (jid.JID, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var conn net.Conn
	var err error
	features := []xmpp.StreamFeature{xmpp.SASL("", secret, mech), xmpp.BindResource()}
	if direct {
		c := tlsCfg.Clone()
		c.NextProtos = []string{"xmpp-client"}
		conn, err = tls.Dial("tcp", addr, c)
	} else {
		conn, err = net.Dial("tcp", addr)
		features = append([]xmpp.StreamFeature{xmpp.StartTLS(tlsCfg)}, features...)
	}
	if err != nil {
		return jid.JID{}, err
	}
	sess, err := xmpp.NewClientSession(ctx, jid.MustParse(user), conn, features...)
	if err != nil {
		conn.Close()
		return jid.JID{}, err
	}
	defer sess.Close()
	return sess.LocalAddr(), nil
}

func TestNew(t *testing.T) {
	srv := ottrtest.New(t)
	if srv.Domain() != "localhost" || len(srv.Domains()) != 1 {
		t.Errorf("Domain() = %q, Domains() = %q; want localhost only", srv.Domain(), srv.Domains())
	}
	alice := "alice@" + srv.Domain()
	for _, direct := range []bool{false, true} {
		addr := srv.Addr()
		if direct {
			addr = srv.DirectTLSAddr()
		}
		got, err := login(t, addr, direct, srv.TLSConfig(), alice, auth.XToken, srv.Token(alice))
		if err != nil {
			t.Fatalf("token login (direct TLS %t): %v", direct, err)
		}
		if got.Bare().String() != alice {
			t.Errorf("bound %s, want %s/…", got, alice)
		}
	}

	// A token logs in once.
	tok := srv.Token(alice)
	if _, err := login(t, srv.Addr(), false, srv.TLSConfig(), alice, auth.XToken, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := login(t, srv.Addr(), false, srv.TLSConfig(), alice, auth.XToken, tok); err == nil {
		t.Error("a token logged in twice")
	}

	bob := "Bob@localhost" // prepared to bob@localhost
	srv.AddUser(bob, "s3cret pass")
	if _, err := login(t, srv.Addr(), false, srv.TLSConfig(), "bob@localhost", sasl.Plain, "s3cret pass"); err != nil {
		t.Fatalf("password login: %v", err)
	}
	if _, err := login(t, srv.Addr(), false, srv.TLSConfig(), "bob@localhost", sasl.Plain, "wrong"); err == nil {
		t.Error("a wrong password logged in")
	}
	if err := srv.CreateUser("bob@localhost", "again"); !errors.Is(err, storage.ErrExists) {
		t.Errorf("CreateUser of an existing account = %v, want storage.ErrExists", err)
	}
	for _, bad := range []string{"carol@elsewhere.example", "localhost", "dave@localhost/phone", "not a jid@@"} {
		if _, err := srv.MintToken(bad); err == nil {
			t.Errorf("MintToken(%q) = nil error", bad)
		}
		if err := srv.CreateUser(bad, "pw"); err == nil {
			t.Errorf("CreateUser(%q) = nil error", bad)
		}
	}

	// TLSConfig trusts this server's certificate, for its domain only.
	c := srv.TLSConfig()
	c.ServerName = "other.example"
	if _, err := login(t, srv.Addr(), false, c, alice, auth.XToken, srv.Token(alice)); err == nil {
		t.Error("the certificate verified for another name")
	}
}

// Each server has token secrets of its own: a token for one is refused
// by another.
func TestFreshSecrets(t *testing.T) {
	a, b := ottrtest.New(t), ottrtest.New(t)
	if a.Config().Hosts[0].OTPSeed == b.Config().Hosts[0].OTPSeed {
		t.Fatal("two servers share an otp_seed")
	}
	if _, err := login(t, b.Addr(), false, b.TLSConfig(), "alice@localhost", auth.XToken, a.Token("alice@localhost")); err == nil {
		t.Error("a token of one server logged in on another")
	}
}

func TestOptions(t *testing.T) {
	srv := ottrtest.New(t,
		ottrtest.WithHosts("chat.example", "Other.Example"),
		ottrtest.WithConfig(func(c *config.Config) { c.HTTP.Listen = []string{"127.0.0.1:0"} }),
		ottrtest.WithConfig(func(c *config.Config) { c.C2S.DirectTLS = nil }),
	)
	if srv.Domain() != "chat.example" || len(srv.Domains()) != 2 || srv.Domains()[1] != "other.example" {
		t.Errorf("Domain() = %q, Domains() = %q", srv.Domain(), srv.Domains())
	}
	if srv.DirectTLSAddr() != "" {
		t.Errorf("DirectTLSAddr() = %q after WithConfig removed it", srv.DirectTLSAddr())
	}
	if plain, _ := srv.Server().HTTPAddrs(); len(plain) != 1 {
		t.Errorf("HTTP listeners %v, want the one WithConfig added", plain)
	}
	// The certificate covers every host.
	c := srv.TLSConfig()
	c.ServerName = "other.example"
	if _, err := login(t, srv.Addr(), false, c, "carol@other.example", auth.XToken, srv.Token("carol@other.example")); err != nil {
		t.Errorf("login on the second host: %v", err)
	}

	if _, err := ottrtest.Start(ottrtest.WithConfig(func(c *config.Config) { c.Limits.MaxDepth = 0 })); err == nil {
		t.Error("Start with an invalid configuration succeeded")
	}
}

func TestStartClose(t *testing.T) {
	srv, err := ottrtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	dir := srv.Config().DataDir
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("data dir: %v", err)
	}
	srv.AddUser("bob@localhost", "pw")
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data dir after Close: %v, want it removed", err)
	}
	if c, err := net.DialTimeout("tcp", srv.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts after Close")
	}
	if err := srv.CreateUser("carol@localhost", "pw"); err == nil {
		t.Error("CreateUser after Close succeeded")
	}
}
