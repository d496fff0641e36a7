package c2s

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// countingConn records the writes made to it.
type countingConn struct {
	net.Conn
	writes [][]byte
	closed bool
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

func (c *countingConn) Close() error { c.closed = true; return nil }

func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

// TestCorkConn: writes go through until cork, are held after it, and
// Close sends what was held in one write, then closes.
func TestCorkConn(t *testing.T) {
	under := &countingConn{}
	c := &corkConn{Conn: under}
	c.Write([]byte("features"))
	if len(under.writes) != 1 {
		t.Fatalf("%d writes before cork, want 1", len(under.writes))
	}
	c.cork()
	c.Write([]byte("</stream:stream>"))
	c.Write([]byte("close_notify"))
	if len(under.writes) != 1 || under.closed {
		t.Fatalf("corked writes went through: %q", under.writes)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if len(under.writes) != 2 || !bytes.Equal(under.writes[1], []byte("</stream:stream>close_notify")) || !under.closed {
		t.Fatalf("after Close: writes %q, closed %v; want the held bytes in one write, then closed", under.writes, under.closed)
	}
}

// TestCorkConnBounded: a corked socket holds at most maxHeld bytes; a
// write that would pass it goes out, after what was held, at once.
func TestCorkConnBounded(t *testing.T) {
	under := &countingConn{}
	c := &corkConn{Conn: under}
	c.cork()
	c.Write([]byte("held"))
	big := bytes.Repeat([]byte("x"), maxHeld)
	c.Write(big)
	if len(under.writes) != 2 || string(under.writes[0]) != "held" || !bytes.Equal(under.writes[1], big) {
		t.Fatalf("over the bound: %d writes, want the held bytes then the big write", len(under.writes))
	}
	c.Write([]byte("tail"))
	c.Close()
	if len(under.writes) != 3 || string(under.writes[2]) != "tail" || !under.closed {
		t.Fatalf("after Close: %q, closed %v", under.writes[2:], under.closed)
	}
}
