// Package certs loads the server's TLS certificate, or generates and keeps a
// self-signed one when none is configured.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/net/idna"
)

// File names of the generated certificate and key inside the directory given
// to LoadOrCreate.
const (
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
)

// validity is how long a generated certificate is valid.
const validity = 10 * 365 * 24 * time.Hour

// LoadOrCreate returns the certificate kept in dir (CertFile and KeyFile).
// When neither file exists it generates a self-signed ECDSA P-256
// certificate for names plus "localhost", 127.0.0.1 and ::1, valid ten
// years, and writes it there (dir is created with mode 0700, the key with
// 0600, the certificate with 0644, each atomically). Names that are IP
// addresses go into the IP SANs; internationalized names are converted to
// their ASCII form. When only one of the two files exists, it returns an
// error rather than overwrite it. logger may be nil.
func LoadOrCreate(dir string, names []string, logger *slog.Logger) (tls.Certificate, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	certPath := filepath.Join(dir, CertFile)
	keyPath := filepath.Join(dir, KeyFile)
	certOK, err := exists(certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyOK, err := exists(keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	switch {
	case certOK && keyOK:
		return Load(certPath, keyPath)
	case certOK:
		return tls.Certificate{}, fmt.Errorf("certs: %s exists but %s does not: restore it, or remove both to generate a new certificate", certPath, keyPath)
	case keyOK:
		return tls.Certificate{}, fmt.Errorf("certs: %s exists but %s does not: restore it, or remove both to generate a new certificate", keyPath, certPath)
	}

	certPEM, keyPEM, leaf, err := generate(names, time.Now())
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: %w", err)
	}
	// The key first: a certificate without its key is useless, and a crash
	// between the two leaves an error that says which file is missing.
	if err := writeAtomic(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeAtomic(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: generated pair: %w", err)
	}
	logger.Info("generated self-signed certificate",
		"cert", certPath, "key", keyPath,
		"dns_names", leaf.DNSNames, "not_after", leaf.NotAfter.Format(time.RFC3339))
	return cert, nil
}

// Load reads a PEM certificate chain and its PEM private key. Errors name
// the file concerned.
func Load(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: %s with key %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// ServerConfig returns a TLS configuration serving cert, with TLS 1.2 as the
// minimum version. Session tickets stay enabled.
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
}

// generate makes a self-signed certificate and its key, both PEM-encoded.
func generate(names []string, now time.Time) (certPEM, keyPEM []byte, leaf *x509.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: generate serial: %w", err)
	}

	dnsNames := []string{}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, n := range append(slices.Clone(names), "localhost") {
		if ip := net.ParseIP(n); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		a, err := idna.Lookup.ToASCII(n)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("certs: name %q: %w", n, err)
		}
		if !slices.Contains(dnsNames, a) {
			dnsNames = append(dnsNames, a)
		}
	}

	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: dnsNames[0], Organization: []string{"ottr self-signed"}},
		NotBefore:             now.Add(-time.Hour), // tolerate clients whose clock is a little behind
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: create certificate: %w", err)
	}
	leaf, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: parse generated certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: marshal key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, leaf, nil
}

// writeAtomic writes data to path with the given mode through a temporary
// file in the same directory and a rename, so path is never seen half
// written.
func writeAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp makes the file 0600, so the key is never readable by others.
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return nil
}

// exists reports whether path exists; errors other than "does not exist"
// (such as a permission problem) are returned.
func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("certs: %w", err)
	}
}
