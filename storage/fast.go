package storage

import (
	"errors"
	"time"
)

// FastToken is one XEP-0484 FAST token as stored: never the token itself,
// only what checks a login with it. A token is bound to one user, one
// client (the SASL2 user-agent id) and one mechanism.
type FastToken struct {
	// Host and Username name the account, as stored.
	Host, Username string
	// Agent is the client's SASL2 <user-agent id=''/>.
	Agent string
	// Mechanism is the FAST mechanism the token was issued for, such as
	// HT-SHA-256-NONE.
	Mechanism string
	// ID is the SHA-256 of the message the client sends to log in with
	// the token (for HT mechanisms, HMAC(token, "Initiator" || cb-data)):
	// it identifies and checks the token without the token being stored.
	ID []byte
	// Responder is the server's final message for a login with the token
	// (HT: HMAC(token, "Responder" || cb-data)).
	Responder []byte
	// Expires is when the token stops being accepted.
	Expires time.Time
	// Used reports whether a login used the token: an unused token is
	// replaced by the next one issued for the same client.
	Used bool
	// Count is the highest XEP-0484 count a login with the token gave, 0
	// for none: a login must give a higher one, if it gives one.
	Count uint64
	// Created is when it was issued.
	Created time.Time
}

// ErrFastReplay is wrapped by implementations when a login with a FAST
// token gives a count that is not above the highest one it already gave.
var ErrFastReplay = errors.New("storage: FAST count not above the last one")
