// Package randid makes the random identifiers of the project: stream ids,
// generated resources, iq ids of server pushes. It is the one place that
// draws them, so that they all have the same length and source.
package randid

import (
	"crypto/rand"
	"encoding/hex"
)

// Len is the length of an id returned by New.
const Len = 16

// New returns Len random lowercase hex characters (64 bits from
// crypto/rand): enough that two ids of one server never collide in
// practice, and unguessable by a client.
func New() string {
	var b [Len / 2]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

// TokenLen is the length of an id returned by Token.
const TokenLen = 32

// Token returns TokenLen random lowercase hex characters (128 bits from
// crypto/rand), for an id that is all a client shows to be let in, such
// as a BOSH session id (XEP-0124 §7.5).
func Token() string {
	var b [TokenLen / 2]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
