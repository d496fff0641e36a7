package c2s

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// corkConn is the socket under a direct TLS connection (TLSListener).
// Writes go straight through until cork; from then on they are held and
// Close sends them in one write before it closes the socket. A session
// whose client closed its stream corks it: the server's closing tag and
// TLS's close_notify then leave in one write and one TCP segment instead
// of two (issue 14: a login's every write is a loopback round of the
// kernel's TCP stack).
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	held   []byte
}

// maxHeld bounds what a corked socket holds: the closing tag, a stream
// error and TLS's close_notify fit many times over. A write that would
// pass it goes out at once with what was held.
const maxHeld = 4 << 10

// Write writes p, or holds it once corked.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.corked && len(c.held)+len(p) <= maxHeld {
		c.held = append(c.held, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	held := c.held
	c.held = nil
	c.mu.Unlock()
	if len(held) > 0 {
		if _, err := c.Conn.Write(held); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(p)
}

// cork holds the writes that follow until Close.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// corkFlushTimeout bounds Close's write of what was held, as crypto/tls
// bounds its close_notify: tls.Conn.Close sets the write deadline to now
// once the alert is "sent", which here means held.
const corkFlushTimeout = 5 * time.Second

// Close writes what was held, then closes the socket.
func (c *corkConn) Close() error {
	c.mu.Lock()
	held := c.held
	c.held, c.corked = nil, false
	c.mu.Unlock()
	var err error
	if len(held) > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(corkFlushTimeout))
		_, err = c.Conn.Write(held)
	}
	return errors.Join(err, c.Conn.Close())
}

// SyscallConn is the socket's, for the relay's parking.
func (c *corkConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("c2s: not a socket")
	}
	return sc.SyscallConn()
}

// corkUnder corks the socket under conn when conn is a direct TLS
// connection from TLSListener, whose Close closes TLS and then that
// socket; otherwise it does nothing (a STARTTLS stream's socket is closed
// by Serve, not through TLS).
func corkUnder(conn net.Conn) {
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		if cc, ok := tc.NetConn().(*corkConn); ok {
			cc.cork()
		}
	}
}

// TLSListener is tls.NewListener for direct TLS (XEP-0368) c2s
// listeners: each accepted connection is a server-side *tls.Conn over
// the socket, as tls.NewListener's, with a socket that lets the session
// send its last bytes in one write.
func TLSListener(l net.Listener, cfg *tls.Config) net.Listener {
	return &tlsListener{Listener: l, cfg: cfg}
}

type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

// Accept accepts a connection and wraps it in TLS; the handshake runs at
// the first read or write.
func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(&corkConn{Conn: c}, l.cfg), nil
}
