package auth

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// exporterLabel and exporterLen are RFC 9266's.
const (
	exporterLabel = "EXPORTER-Channel-Binding"
	exporterLen   = 32
)

// TLSExporter returns the tls-exporter channel-binding data of a TLS
// connection (RFC 9266): 32 bytes of keying material with the label
// "EXPORTER-Channel-Binding" and no context. Only TLS 1.3 is accepted:
// on TLS 1.2 the exporter is safe only with the extended master secret,
// and ottr offers tls-exporter on TLS 1.3 alone.
func TLSExporter(cs *tls.ConnectionState) ([]byte, error) {
	if cs == nil || !cs.HandshakeComplete {
		return nil, errors.New("auth: tls-exporter: no TLS handshake")
	}
	if cs.Version < tls.VersionTLS13 {
		return nil, errors.New("auth: tls-exporter: TLS 1.3 only")
	}
	b, err := cs.ExportKeyingMaterial(exporterLabel, nil, exporterLen)
	if err != nil {
		return nil, fmt.Errorf("auth: tls-exporter: %w", err)
	}
	return b, nil
}

// ChannelBindings returns the channel-binding types a TLS connection
// offers, in XEP-0440's order of preference: tls-exporter on TLS 1.3, and
// tls-server-end-point when the server's certificate (DER) is known. None
// without TLS (cs nil).
func ChannelBindings(cs *tls.ConnectionState, cert []byte) []string {
	if cs == nil || !cs.HandshakeComplete {
		return nil
	}
	var types []string
	if cs.Version >= tls.VersionTLS13 {
		types = append(types, CBTLSExporter)
	}
	if len(cert) > 0 {
		types = append(types, CBTLSServerEndPoint)
	}
	return types
}

// ChannelBindingData returns the data of channel-binding type typ for a
// TLS connection whose server certificate is cert (DER).
func ChannelBindingData(typ string, cs *tls.ConnectionState, cert []byte) ([]byte, error) {
	switch typ {
	case CBTLSExporter:
		return TLSExporter(cs)
	case CBTLSServerEndPoint:
		return TLSServerEndPoint(cert)
	}
	return nil, fmt.Errorf("auth: channel-binding type %q not supported", typ)
}
