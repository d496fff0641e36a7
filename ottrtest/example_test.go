package ottrtest_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/ottrtest"
)

// A client written with mellium logs in to a server started for the
// example: alice with a token (SASL X-TOKEN), bob with a password (PLAIN).
// In a test, ottrtest.New(t) does what Start and Close do here.
func Example() {
	srv, err := ottrtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	login := func(user string, mech sasl.Mechanism, secret string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			log.Fatal(err)
		}
		session, err := xmpp.NewClientSession(ctx, jid.MustParse(user+"@"+srv.Domain()), conn,
			xmpp.StartTLS(srv.TLSConfig()),
			xmpp.SASL("", secret, mech),
			xmpp.BindResource(),
		)
		if err != nil {
			log.Fatal(err)
		}
		defer session.Close()
		fmt.Println("logged in as", session.LocalAddr().Bare(), "with", mech.Name)
	}

	login("alice", auth.XToken, srv.Token("alice@"+srv.Domain()))

	srv.AddUser("bob@"+srv.Domain(), "correct horse battery staple")
	login("bob", sasl.Plain, "correct horse battery staple")

	// Output:
	// logged in as alice@localhost with X-TOKEN
	// logged in as bob@localhost with PLAIN
}
