package auth

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
)

// TLSServerEndPoint returns the tls-server-end-point channel binding data
// (RFC 5929 §4.1) of the server certificate der: its hash with the hash
// function of its signature algorithm, SHA-256 when that is MD5 or SHA-1
// (and for Ed25519, which has none). HT-SHA-256-ENDP and the SCRAM -PLUS
// mechanisms with that binding type use it.
func TLSServerEndPoint(der []byte) ([]byte, error) {
	if len(der) == 0 {
		return nil, errors.New("auth: tls-server-end-point: no certificate")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("auth: tls-server-end-point: %w", err)
	}
	h := crypto.SHA256
	switch cert.SignatureAlgorithm {
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		h = crypto.SHA384
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
		h = crypto.SHA512
	}
	w := h.New()
	w.Write(der)
	return w.Sum(nil), nil
}
