// Package consumer is an application's integration test against ottr.
package consumer

import (
	"context"
	"net"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/ottrtest"
)

// loginAs logs in to srv over STARTTLS as user@domain and returns the
// session, closed when the test ends.
func loginAs(t *testing.T, srv *ottrtest.Server, user string, mech sasl.Mechanism, secret string) *xmpp.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	sess, err := xmpp.NewClientSession(ctx, jid.MustParse(user+"@"+srv.Domain()), conn,
		xmpp.StartTLS(srv.TLSConfig()),
		xmpp.SASL("", secret, mech),
		xmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
		t.Fatalf("login as %s with %s: %v", user, mech.Name, err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

func TestTokenLogin(t *testing.T) {
	srv := ottrtest.New(t)
	sess := loginAs(t, srv, "alice", auth.XToken, srv.Token("alice@"+srv.Domain()))
	if got := sess.LocalAddr().Bare().String(); got != "alice@localhost" {
		t.Errorf("logged in as %s, want alice@localhost", got)
	}
}

func TestPasswordLogin(t *testing.T) {
	srv := ottrtest.New(t, ottrtest.WithHosts("chat.example"))
	srv.AddUser("bob@chat.example", "hunter2 hunter2")
	sess := loginAs(t, srv, "bob", sasl.Plain, "hunter2 hunter2")
	if got := sess.LocalAddr().Bare().String(); got != "bob@chat.example" {
		t.Errorf("logged in as %s, want bob@chat.example", got)
	}
}
