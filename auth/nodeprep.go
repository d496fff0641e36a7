package auth

import (
	"golang.org/x/text/secure/precis"
)

// Nodeprep prepares a username as the localpart of a JID: case-mapped and
// checked with the PRECIS UsernameCaseMapped profile that RFC 7622 uses for
// localparts (for ASCII names the same result as Prosody's nodeprep), with
// the characters a localpart may not hold refused.
func Nodeprep(username string) (string, error) {
	s, err := precis.UsernameCaseMapped.String(username)
	if err != nil {
		return "", malformed("username is not a valid localpart")
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"', '&', '\'', '/', ':', '<', '>', '@':
			return "", malformed("username holds a character a localpart may not")
		}
	}
	if len(s) > 1023 {
		return "", malformed("username longer than 1023 bytes")
	}
	return s, nil
}
