package proxy65

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// SOCKS5 (RFC 1928) as XEP-0065 §6.3 uses it: no authentication, one
// CONNECT request whose destination is a domain name, the hex SHA-1 of
// the stream id and the two JIDs, and port 0.
const (
	socksVersion  = 5
	methodNoAuth  = 0x00
	methodNone    = 0xff
	cmdConnect    = 0x01
	atypDomain    = 0x03
	hashHexLength = 40 // hex SHA-1
)

// Reply codes (RFC 1928 §6).
const (
	replySucceeded       = 0x00
	replyFailure         = 0x01
	replyNotAllowed      = 0x02
	replyHostUnreachable = 0x04
	replyBadCommand      = 0x07
	replyBadAddressType  = 0x08
)

// errSocks is the error of a malformed or refused SOCKS5 handshake.
var errSocks = errors.New("proxy65: SOCKS5 handshake refused")

// readRequest reads a client's SOCKS5 greeting, answers it, and reads its
// CONNECT request, returning the destination: a lowercase hex SHA-1. It
// reads exactly the bytes the handshake has, never more (what follows
// belongs to the transfer), into a buffer of at most 257 bytes. A
// request it refuses is answered with the matching failure; the caller
// answers an accepted one with writeReply.
func readRequest(rw io.ReadWriter) (string, error) {
	var buf [2 + 255]byte
	// Greeting: VER, NMETHODS, METHODS.
	if _, err := io.ReadFull(rw, buf[:2]); err != nil {
		return "", fmt.Errorf("proxy65: reading the greeting: %w", err)
	}
	if buf[0] != socksVersion {
		return "", fmt.Errorf("%w: version %d", errSocks, buf[0])
	}
	n := int(buf[1])
	if n == 0 {
		return "", fmt.Errorf("%w: no authentication method offered", errSocks)
	}
	if _, err := io.ReadFull(rw, buf[:n]); err != nil {
		return "", fmt.Errorf("proxy65: reading the methods: %w", err)
	}
	if !slices.Contains(buf[:n], methodNoAuth) {
		rw.Write([]byte{socksVersion, methodNone})
		return "", fmt.Errorf("%w: no-authentication not offered", errSocks)
	}
	if _, err := rw.Write([]byte{socksVersion, methodNoAuth}); err != nil {
		return "", fmt.Errorf("proxy65: answering the greeting: %w", err)
	}
	// Request: VER, CMD, RSV, ATYP, then for a domain LEN, ADDR, PORT.
	if _, err := io.ReadFull(rw, buf[:4]); err != nil {
		return "", fmt.Errorf("proxy65: reading the request: %w", err)
	}
	switch {
	case buf[0] != socksVersion:
		return "", fmt.Errorf("%w: request version %d", errSocks, buf[0])
	case buf[1] != cmdConnect:
		writeReply(rw, replyBadCommand, "")
		return "", fmt.Errorf("%w: command %d", errSocks, buf[1])
	case buf[3] != atypDomain:
		writeReply(rw, replyBadAddressType, "")
		return "", fmt.Errorf("%w: address type %d", errSocks, buf[3])
	}
	if _, err := io.ReadFull(rw, buf[:1]); err != nil {
		return "", fmt.Errorf("proxy65: reading the address: %w", err)
	}
	n = int(buf[0])
	if _, err := io.ReadFull(rw, buf[:n+2]); err != nil { // the address and the port
		return "", fmt.Errorf("proxy65: reading the address: %w", err)
	}
	addr := string(buf[:n])
	if !isHash(addr) {
		writeReply(rw, replyHostUnreachable, "")
		return "", fmt.Errorf("%w: the address is not a hex SHA-1", errSocks)
	}
	return strings.ToLower(addr), nil
}

// writeReply answers a request with code and the address (a hash, or
// "" for a failure that has none).
func writeReply(w io.Writer, code byte, addr string) error {
	b := make([]byte, 0, 7+len(addr))
	b = append(b, socksVersion, code, 0, atypDomain, byte(len(addr)))
	b = append(b, addr...)
	b = append(b, 0, 0)
	_, err := w.Write(b)
	return err
}

// isHash reports whether s is 40 hex digits.
func isHash(s string) bool {
	if len(s) != hashHexLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Hash is the SOCKS5 destination of a bytestream (XEP-0065 §5.3.2): the
// hex SHA-1 of the stream id, the initiator's full JID and the target's.
func Hash(sid string, initiator, target jid.JID) string {
	sum := sha1.Sum([]byte(sid + initiator.String() + target.String()))
	return hex.EncodeToString(sum[:])
}

// ReplyError is a SOCKS5 failure reply (RFC 1928 §6), such as 2 for a
// connection not allowed.
type ReplyError byte

func (e ReplyError) Error() string { return fmt.Sprintf("proxy65: SOCKS5 reply %d", byte(e)) }

// Dial connects to the SOCKS5 proxy at addr as a bytestream party does
// (XEP-0065 §6.3.2), asking for hash, and returns the connection once
// the proxy accepted; a failure reply is a ReplyError.
func Dial(ctx context.Context, addr, hash string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := clientHandshake(c, hash); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// clientHandshake is the client's side of readRequest.
func clientHandshake(rw io.ReadWriter, hash string) error {
	req := append([]byte{socksVersion, 1, methodNoAuth, socksVersion, cmdConnect, 0, atypDomain, byte(len(hash))}, hash...)
	if _, err := rw.Write(append(req, 0, 0)); err != nil {
		return err
	}
	var buf [2 + 255]byte
	if _, err := io.ReadFull(rw, buf[:2]); err != nil {
		return fmt.Errorf("proxy65: reading the method: %w", err)
	}
	if buf[1] != methodNoAuth {
		return fmt.Errorf("%w: method %d", errSocks, buf[1])
	}
	if _, err := io.ReadFull(rw, buf[:5]); err != nil {
		return fmt.Errorf("proxy65: reading the reply: %w", err)
	}
	code, n := buf[1], int(buf[4])
	if _, err := io.ReadFull(rw, buf[:n+2]); err != nil {
		return fmt.Errorf("proxy65: reading the reply: %w", err)
	}
	if code != replySucceeded {
		return ReplyError(code)
	}
	return nil
}
