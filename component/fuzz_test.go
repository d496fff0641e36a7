package component_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"ottr.im/ottr/component"
	"ottr.im/ottr/internal/routertest"
)

// FuzzHandshake feeds arbitrary input to a component connection: it must
// end (within the handshake timeout), never panic, and never accept a
// component (the stream id is random, so no input can hold its proof).
func FuzzHandshake(f *testing.F) {
	const header = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='push.localhost'>"
	for _, seed := range []string{
		header + "<handshake>0123456789abcdef0123456789abcdef01234567</handshake>",
		header,
		header + "<message to='a@localhost'/>",
		header + "<handshake><x/></handshake>",
		"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='push.localhost'>",
		"<?xml version='1.0' encoding='latin1'?><stream:stream/>",
		"<!-- c --><stream:stream/>",
		"<!DOCTYPE x [<!ENTITY a 'b'>]><stream:stream/>",
		"GET / HTTP/1.1\r\n\r\n",
		"<stream xmlns='http://etherx.jabber.org/streams' to='push.localhost'>   <handshake/>",
	} {
		f.Add([]byte(seed))
	}
	core, _ := routertest.New(f)
	srv, err := component.New(component.Config{
		Services:         []component.Service{{Name: "push.localhost", Secret: "s3cret"}},
		Core:             core,
		HandshakeTimeout: 2 * time.Second,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	f.Fuzz(func(t *testing.T, in []byte) {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.Serve(context.Background(), server)
		}()
		// The input, then the end of it: the server sees EOF at once.
		client.Write(in)
		client.(*net.TCPConn).CloseWrite()
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		out, _ := io.ReadAll(client)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the connection did not end")
		}
		if bytes.Contains(out, []byte("<handshake/>")) {
			t.Fatalf("accepted %q", in)
		}
	})
}
