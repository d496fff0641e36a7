package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCheckInterval is how often, at most, Files looks at its files'
// modification times when no other interval is given: at the first
// handshake after it has passed.
const DefaultCheckInterval = 10 * time.Second

// Files serves the certificate of a PEM certificate chain and key pair,
// and reads them again when they change on disk: at a handshake, at most
// once every check interval, it compares their modification times and
// sizes with those of the files it loaded. A pair that does not load (a
// half-written file, a key that does not match) is logged and the
// certificate in use is kept; it is tried again when either file changes
// once more. Files is safe for concurrent use.
type Files struct {
	certFile, keyFile string
	interval          time.Duration
	logger            *slog.Logger
	now               func() time.Time

	cur       atomic.Pointer[loadedPair]
	nextCheck atomic.Int64 // Unix nanoseconds; a handshake after it looks at the files
	mu        sync.Mutex   // one reload at a time
	failed    pairStamp    // the stamps of the last pair that did not load, under mu
}

// loadedPair is a certificate and the stamps of the files it came from.
type loadedPair struct {
	cert  *tls.Certificate
	stamp pairStamp
}

// pairStamp tells whether the files changed: modification time and size
// of each.
type pairStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// FilesOptions are the optional settings of NewFiles.
type FilesOptions struct {
	// CheckInterval is the least time between two looks at the files'
	// modification times; 0 is DefaultCheckInterval, a negative value
	// looks at every handshake.
	CheckInterval time.Duration
	// Logger receives a line for each reload and each pair that did not
	// load; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// NewFiles loads certFile and keyFile (as Load does) and returns a Files
// serving them; an error if they do not load.
func NewFiles(certFile, keyFile string, opts FilesOptions) (*Files, error) {
	f := &Files{
		certFile: certFile,
		keyFile:  keyFile,
		interval: opts.CheckInterval,
		logger:   opts.Logger,
		now:      opts.Now,
	}
	if f.interval == 0 {
		f.interval = DefaultCheckInterval
	}
	if f.logger == nil {
		f.logger = slog.New(slog.DiscardHandler)
	}
	if f.now == nil {
		f.now = time.Now
	}
	st, err := f.stat()
	if err != nil {
		return nil, err
	}
	cert, err := Load(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	f.cur.Store(&loadedPair{cert: &cert, stamp: st})
	f.nextCheck.Store(f.now().Add(f.interval).UnixNano())
	return f, nil
}

// Certificate returns the certificate in use, after looking at the files
// if the check interval has passed since the last look. Only one caller
// looks; the others meanwhile get the certificate in use.
func (f *Files) Certificate() *tls.Certificate {
	now := f.now()
	next := f.nextCheck.Load()
	if now.UnixNano() >= next && f.nextCheck.CompareAndSwap(next, now.Add(f.interval).UnixNano()) {
		f.check()
	}
	return f.cur.Load().cert
}

// GetCertificate is Certificate as tls.Config.GetCertificate wants it.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.Certificate(), nil
}

// Reload reads the files now, changed or not. On an error the
// certificate in use is kept and the error returned (and logged).
func (f *Files) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := f.stat()
	if err == nil {
		err = f.loadLocked(st)
	}
	if err != nil {
		f.logger.Error("certificate files did not load: keeping the certificate in use", "cert", f.certFile, "key", f.keyFile, "err", err)
	}
	return err
}

// check reloads the files if their stamps changed since they were loaded
// and since a pair last failed to load.
func (f *Files) check() {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := f.stat()
	if err != nil {
		if st != f.failed {
			f.failed = st
			f.logger.Error("certificate files: keeping the certificate in use", "err", err)
		}
		return
	}
	if st == f.cur.Load().stamp || st == f.failed {
		return
	}
	if err := f.loadLocked(st); err != nil {
		f.failed = st
		f.logger.Error("changed certificate files did not load: keeping the certificate in use; fix them and they are read again", "cert", f.certFile, "key", f.keyFile, "err", err)
	}
}

// loadLocked loads the pair whose stamps are st and puts it in use.
func (f *Files) loadLocked(st pairStamp) error {
	cert, err := Load(f.certFile, f.keyFile)
	if err != nil {
		return err
	}
	if cert.Leaf != nil && f.now().After(cert.Leaf.NotAfter) {
		return fmt.Errorf("certs: %s expired at %s", f.certFile, cert.Leaf.NotAfter.Format(time.RFC3339))
	}
	f.cur.Store(&loadedPair{cert: &cert, stamp: st})
	f.failed = pairStamp{}
	attrs := []any{"cert", f.certFile, "key", f.keyFile}
	if cert.Leaf != nil {
		attrs = append(attrs, "dns_names", cert.Leaf.DNSNames, "not_after", cert.Leaf.NotAfter.Format(time.RFC3339))
	}
	f.logger.Info("loaded certificate", attrs...)
	return nil
}

// stat returns the files' stamps. When one is missing the stamp still
// tells the other's, so that a later change is seen.
func (f *Files) stat() (pairStamp, error) {
	var st pairStamp
	ci, cerr := os.Stat(f.certFile)
	if cerr == nil {
		st.certMod, st.certSize = ci.ModTime(), ci.Size()
	}
	ki, kerr := os.Stat(f.keyFile)
	if kerr == nil {
		st.keyMod, st.keySize = ki.ModTime(), ki.Size()
	}
	if err := errors.Join(cerr, kerr); err != nil {
		return st, fmt.Errorf("certs: %w", err)
	}
	return st, nil
}
