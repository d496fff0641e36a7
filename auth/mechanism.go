package auth

import (
	"bytes"

	"mellium.im/sasl"
)

// XToken is the X-TOKEN SASL mechanism of mod_auth_token. Its single
// message is framed exactly like PLAIN (RFC 4616):
//
//	authzid NUL authcid NUL token
//
// As a client mechanism it sends the credentials it is given (the token as
// the password). As a server mechanism it checks the framing, nodepreps
// authcid, and asks the negotiator's permissions callback, which receives
// the prepared username, the token as password and the authzid.
var XToken = plainFramed("X-TOKEN")

// Plain is the PLAIN SASL mechanism (RFC 4616) with the same server-side
// preparation as XToken: the username is nodeprepped before the
// permissions callback sees it.
var Plain = plainFramed("PLAIN")

// maxPayload bounds a PLAIN-framed message: 1023 bytes each for the
// identities (RFC 7622) and the secret, with the separators.
const maxPayload = 3*1023 + 2

func plainFramed(name string) sasl.Mechanism {
	return sasl.Mechanism{
		Name:  name,
		Start: sasl.Plain.Start,
		Next: func(n *sasl.Negotiator, msg []byte, _ interface{}) (bool, []byte, interface{}, error) {
			if n.State()&sasl.Receiving != sasl.Receiving || n.State()&sasl.StepMask != sasl.AuthTextSent {
				return false, nil, nil, sasl.ErrTooManySteps
			}
			authzid, user, secret, err := SplitPlain(msg)
			if err != nil {
				return false, nil, nil, sasl.ErrInvalidChallenge
			}
			if !n.Permissions(sasl.Credentials(func() ([]byte, []byte, []byte) {
				return []byte(user), []byte(secret), []byte(authzid)
			})) {
				return false, nil, nil, sasl.ErrAuthn
			}
			return false, nil, nil, nil
		},
	}
}

// SplitPlain parses a PLAIN-framed message into its authorization
// identity, its nodeprepped username and its secret. A message that is not
// three NUL-separated fields with a non-empty, preparable username and a
// non-empty secret is malformed.
func SplitPlain(msg []byte) (authzid, username, secret string, err error) {
	if len(msg) > maxPayload {
		return "", "", "", malformed("payload longer than %d bytes", maxPayload)
	}
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", "", "", malformed("want authzid NUL authcid NUL secret")
	}
	if len(parts[1]) == 0 || len(parts[2]) == 0 {
		return "", "", "", malformed("empty username or secret")
	}
	username, err = Nodeprep(string(parts[1]))
	if err != nil {
		return "", "", "", err
	}
	return string(parts[0]), username, string(parts[2]), nil
}
