package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SCRAMClient is the client side of one SCRAM exchange, for tests and
// tools that log in to ottr (mellium's client mechanisms know neither
// tls-server-end-point nor XEP-0474). Set the fields, then send First,
// answer the server-first-message with Final, and check the
// server-final-message with Verify.
type SCRAMClient struct {
	Mechanism string
	Username  string
	Password  string
	Authzid   string
	// CBType and CBData are the channel binding (-PLUS mechanisms).
	CBType string
	CBData []byte
	// GS2Flag overrides the gs2-cbind-flag ("n", "y" or "p=TYPE"); by
	// default "p=CBType" with a CBType, else "n".
	GS2Flag string
	// Nonce is the client nonce; random when empty.
	Nonce string

	gs2, bare       string
	serverSignature []byte
	// SSDP is the XEP-0474 hash the server sent in its
	// server-first-message ("" for none), known after Final.
	SSDP string
}

// First returns the client-first-message.
func (c *SCRAMClient) First() []byte {
	flag := c.GS2Flag
	if flag == "" {
		flag = "n"
		if c.CBType != "" {
			flag = "p=" + c.CBType
		}
	}
	if c.Nonce == "" {
		b := make([]byte, 18)
		rand.Read(b)
		c.Nonce = base64.RawURLEncoding.EncodeToString(b)
	}
	c.gs2 = flag + ","
	if c.Authzid != "" {
		c.gs2 += "a=" + escapeSaslname(c.Authzid)
	}
	c.gs2 += ","
	c.bare = "n=" + escapeSaslname(c.Username) + ",r=" + c.Nonce
	return []byte(c.gs2 + c.bare)
}

// Final returns the client-final-message answering serverFirst.
func (c *SCRAMClient) Final(serverFirst []byte) ([]byte, error) {
	h, ok := SCRAMHash(c.Mechanism)
	if !ok {
		return nil, fmt.Errorf("auth: %q is not a SCRAM mechanism", c.Mechanism)
	}
	var nonce, salt []byte
	iter := 0
	for f := range bytes.SplitSeq(serverFirst, []byte{','}) {
		if len(f) < 2 || f[1] != '=' {
			return nil, errors.New("auth: bad server-first-message")
		}
		v := f[2:]
		switch f[0] {
		case 'r':
			nonce = v
		case 's':
			var err error
			if salt, err = base64.StdEncoding.AppendDecode(nil, v); err != nil {
				return nil, errors.New("auth: bad salt")
			}
		case 'i':
			iter, _ = strconv.Atoi(string(v))
		case 'h':
			c.SSDP = string(v)
		case 'm':
			return nil, errors.New("auth: mandatory extension")
		}
	}
	if !bytes.HasPrefix(nonce, []byte(c.Nonce)) || len(salt) == 0 || iter <= 0 {
		return nil, errors.New("auth: bad server-first-message")
	}
	cb := base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.CBData...))
	withoutProof := "c=" + cb + ",r=" + string(nonce)
	authMessage := []byte(c.bare + "," + string(serverFirst) + "," + withoutProof)
	salted, err := pbkdf2.Key(h, c.Password, salt, iter, h().Size())
	if err != nil {
		return nil, err
	}
	creds := NewSCRAMCredentials(h, salt, iter, salted)
	proof := hmacSum(h, salted, []byte("Client Key"))
	subtle.XORBytes(proof, proof, hmacSum(h, creds.StoredKey, authMessage))
	c.serverSignature = hmacSum(h, creds.ServerKey, authMessage)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// Verify checks the server-final-message: the server proved it knows the
// credentials.
func (c *SCRAMClient) Verify(serverFinal []byte) error {
	v, ok := bytes.CutPrefix(serverFinal, []byte("v="))
	if !ok {
		return fmt.Errorf("auth: server-final-message %q", serverFinal)
	}
	got, err := base64.StdEncoding.AppendDecode(nil, v)
	if err != nil || !hmac.Equal(got, c.serverSignature) {
		return errors.New("auth: wrong server signature")
	}
	return nil
}

// escapeSaslname encodes ',' and '=' as RFC 5802 §5.1 wants.
func escapeSaslname(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}
