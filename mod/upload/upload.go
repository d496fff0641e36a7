// Package upload is XEP-0363, HTTP file upload: a service at its own
// domain (upload.<host> by default, a domain handler of the core, listed
// in the host's disco#items) that hands the host's users slots, each a
// PUT URL to upload one file of a given name, size and type to, and a GET
// URL to share it by, both on the server's HTTP listener (the Module is
// its http.Handler under PathPrefix).
//
// The service's disco#info has the identity store/file, the feature
// urn:xmpp:http:upload:0 and the maximum file size in an
// urn:xmpp:http:upload:0 form. A slot request (an iq get with <request
// filename=” size=” content-type=”/>) from a user of another host or
// a component gets not-allowed; a size over the maximum not-acceptable
// with <file-too-large><max-file-size/></file-too-large>; a slot past the
// user's quota (files and bytes, the slots not yet used included) or the
// total of every user's resource-constraint.
//
// A slot is single-use and expires (Options.SlotLifetime): its PUT URL
// carries the expiry and an HMAC of the slot id and expiry, under a
// per-server secret kept in Options.Dir, so that the GET URL, which the
// file's recipients see, does not let anyone write. The PUT must have the
// slot's exact length and media type; the file is written beside its
// final name and renamed into place once complete, and nothing of a
// refused or broken PUT is kept. Files expire (Options.FileLifetime), and
// those of a deleted account go: a sweeper removes them in the
// background.
//
// Hooks: AccountDeleted (0): sweep now (the store marked the account's
// files deleted in the deletion's transaction).
//
// Store: ReserveUpload, ClaimUpload, ReleaseUpload, CompleteUpload,
// UploadedFile, ExpiredUploads, DeleteUploads.
package upload

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/caps"
	"ottr.im/ottr/internal/defaults"
	"ottr.im/ottr/internal/randid"
	"ottr.im/ottr/router"
	"ottr.im/ottr/storage"
)

// Namespaces.
const (
	NS      = "urn:xmpp:http:upload:0"
	nsInfo  = "http://jabber.org/protocol/disco#info"
	nsItems = "http://jabber.org/protocol/disco#items"
)

// PathPrefix is where the Module serves its files over HTTP: slot URLs
// are <base URL>/upload/<slot id>/<file name>.
const PathPrefix = "/upload/"

// Store holds the slots and the files' metadata.
type Store interface {
	// ReserveUpload records slot, pending, unless it would take its
	// owner past lim.Quota or every user together past lim.Total (when
	// set): then it stores nothing and returns an error wrapping
	// storage.ErrQuota. Slots count from when they are issued, pending
	// ones until they expire at now.
	ReserveUpload(ctx context.Context, slot storage.UploadSlot, lim storage.UploadLimits, now time.Time) error
	// ClaimUpload moves a pending slot not expired at now to writing and
	// returns it; an unknown or deleted one fails with storage.ErrNotFound,
	// an expired one with storage.ErrUploadExpired, one being written or
	// done with storage.ErrUploadUsed.
	ClaimUpload(ctx context.Context, id string, now time.Time) (storage.UploadSlot, error)
	// ReleaseUpload moves a slot being written back to pending.
	ReleaseUpload(ctx context.Context, id string) error
	// CompleteUpload marks a slot being written as done at now; one not
	// being written fails with storage.ErrNotFound.
	CompleteUpload(ctx context.Context, id string, now time.Time) error
	// UploadedFile returns a done slot; any other fails with
	// storage.ErrNotFound.
	UploadedFile(ctx context.Context, id string) (storage.UploadSlot, error)
	// ExpiredUploads returns at most max ids of slots whose files are to
	// go: pending ones expired before slotsBefore, ones being written
	// expired before writingBefore, files uploaded before filesBefore,
	// and those of deleted accounts.
	ExpiredUploads(ctx context.Context, slotsBefore, writingBefore, filesBefore time.Time, max int) ([]string, error)
	// DeleteUploads removes the slots with the given ids.
	DeleteUploads(ctx context.Context, ids []string) error
}

// The defaults of Options' zero values (config's defaults too).
const (
	DefaultMaxFileBytes = 10 << 20
	DefaultQuotaBytes   = 512 << 20
	DefaultQuotaFiles   = 1000
	DefaultSlotLifetime = 5 * time.Minute
	DefaultFileLifetime = 7 * 24 * time.Hour
	DefaultIdleTimeout  = 30 * time.Second
	DefaultSweep        = time.Minute
)

// Options configure the module.
type Options struct {
	// Services maps each upload service's domain (upload.example.org) to
	// the local host whose users it serves (example.org).
	Services map[string]string
	// Dir holds the files (Dir/files) and the secret that signs PUT URLs
	// (Dir/secret, made at the first start); created 0700 if missing.
	Dir string
	// BaseURL returns the base URL of the HTTP listener for a host's
	// users, such as "https://example.org:5281" or http.public_url; the
	// slot URLs are under it. It is called for each slot, so that the
	// server may answer with a port it learnt when it started listening.
	BaseURL func(host string) string
	// MaxFileBytes bounds one file; 0 is DefaultMaxFileBytes.
	MaxFileBytes int64
	// QuotaBytes and QuotaFiles bound one user's files and pending slots
	// together; 0 is DefaultQuotaBytes, DefaultQuotaFiles.
	QuotaBytes int64
	QuotaFiles int
	// TotalBytes bounds every user's files together; 0: no bound.
	TotalBytes int64
	// SlotLifetime is how long a slot's PUT may start after it was
	// issued, and how long the PUT may last; 0 is DefaultSlotLifetime.
	SlotLifetime time.Duration
	// FileLifetime is how long a file is kept after its upload; 0 is
	// DefaultFileLifetime.
	FileLifetime time.Duration
	// IdleTimeout ends a PUT or GET that reads or writes nothing for
	// this long; 0 is DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Sweep is the time between two sweeps of expired files and slots;
	// 0 is DefaultSweep.
	Sweep time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Module is the upload service: the XMPP side (a domain handler per
// service) and the HTTP side (ServeHTTP).
type Module struct {
	core     *router.Router
	store    Store
	opts     Options
	logger   *slog.Logger
	files    string // Dir/files
	secret   []byte
	services map[string]string // service domain -> host

	kick chan struct{} // a sweep is wanted now
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// secretFile is the name of the signing secret in Options.Dir.
const secretFile = "secret"

// Register adds a domain handler for each service of opts to core and
// prepares the files' directory and the signing secret. Start runs the
// sweeper.
func Register(core *router.Router, store Store, opts Options) (*Module, error) {
	defaults.Positive(&opts.MaxFileBytes, DefaultMaxFileBytes)
	defaults.Positive(&opts.QuotaBytes, DefaultQuotaBytes)
	defaults.Positive(&opts.QuotaFiles, DefaultQuotaFiles)
	defaults.Positive(&opts.SlotLifetime, DefaultSlotLifetime)
	defaults.Positive(&opts.FileLifetime, DefaultFileLifetime)
	defaults.Positive(&opts.IdleTimeout, DefaultIdleTimeout)
	defaults.Positive(&opts.Sweep, DefaultSweep)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BaseURL == nil {
		return nil, errors.New("upload: no base URL")
	}
	if opts.Dir == "" {
		return nil, errors.New("upload: no directory")
	}
	m := &Module{
		core:     core,
		store:    store,
		opts:     opts,
		logger:   core.Logger().With("module", "upload"),
		files:    filepath.Join(opts.Dir, "files"),
		services: make(map[string]string),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	if err := os.MkdirAll(m.files, 0o700); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	var err error
	if m.secret, err = loadSecret(filepath.Join(opts.Dir, secretFile)); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	for domain, host := range opts.Services {
		domain = strings.ToLower(domain)
		if !core.Serves(host) {
			return nil, fmt.Errorf("upload: %s is for %s, which is not a local host", domain, host)
		}
		m.services[domain] = strings.ToLower(host)
		if err := core.AddDomain(domain, m); err != nil {
			return nil, fmt.Errorf("upload: %w", err)
		}
	}
	return m, core.Hooks("upload", router.HookSpec{Event: router.AccountDeleted, Fn: func(e *router.EventData) bool {
		if e.Deleted == nil {
			m.Kick()
		}
		return false
	}})
}

// loadSecret reads the signing secret at path, or makes one (32 random
// bytes, hex, mode 0600) if there is none.
func loadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(s) < 32 {
			return nil, fmt.Errorf("secret %s: not 32 bytes or more of hex", path)
		}
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	s := make([]byte, 32)
	rand.Read(s)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadSecret(path) // made by another process meanwhile
	} else if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(hex.EncodeToString(s) + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return s, f.Close()
}

// HandleStanza serves the stanzas addressed to an upload service: disco
// and slot requests; other requests get service-unavailable, messages
// bounce, presence is dropped.
func (m *Module) HandleStanza(ctx context.Context, from router.Target, st *element.Stanza) {
	switch {
	case st.Name == "message":
		m.core.Bounce(from, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		return
	case !st.IsIQRequest():
		return
	}
	host, ok := m.services[st.To.Domainpart()]
	payload, hasPayload := st.Payload()
	switch {
	case !ok || st.To.Localpart() != "" || st.To.Resourcepart() != "":
		m.core.Bounce(from, st, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		return
	case !hasPayload:
		m.core.Bounce(from, st, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest})
		return
	}
	var (
		result xml.TokenReader
		err    error
	)
	switch payload.Name {
	case xml.Name{Space: nsInfo, Local: "query"}:
		result, err = m.info(st, payload)
	case xml.Name{Space: nsItems, Local: "query"}:
		result, err = m.items(st, payload)
	case xml.Name{Space: NS, Local: "request"}:
		result, err = m.slot(ctx, from.JID(), host, st, payload)
	default:
		err = stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	if err != nil {
		m.answerError(from, st, err)
		return
	}
	reply := st.Reply(st.To, result)
	reply.To = from.JID()
	m.core.Deliver(from, reply)
}

// fileTooLarge is the error of a slot request over the maximum size, with
// XEP-0363's application condition.
type fileTooLarge struct{ max int64 }

func (e fileTooLarge) Error() string { return "file too large" }

// answerError sends err to the requester: a stanza.Error as it is,
// fileTooLarge with its condition, anything else as
// internal-server-error (logged).
func (m *Module) answerError(from router.Target, st *element.Stanza, err error) {
	var big fileTooLarge
	if errors.As(err, &big) {
		max := strconv.FormatInt(big.max, 10)
		se := stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: map[string]string{
			"": "File too large. The maximum file size is " + max + " bytes",
		}}
		app := xmlstream.Wrap(element.Text("max-file-size", max), xml.StartElement{Name: xml.Name{Space: NS, Local: "file-too-large"}})
		reply, rerr := element.New("iq", "error", st.To, from.JID(), st.ID, xmlstream.MultiReader(tokensReader(st.Tokens()), se.Wrap(app)))
		if rerr != nil {
			m.logger.Error("building an error", "err", rerr)
			return
		}
		m.core.Deliver(from, reply)
		return
	}
	var se stanza.Error
	if !errors.As(err, &se) {
		m.logger.Error("slot request failed", "from", from.JID().String(), "err", err)
		se = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	}
	m.core.Bounce(from, st, se)
}

// tokensReader reads toks.
func tokensReader(toks []xml.Token) xml.TokenReader {
	i := 0
	return xmlstream.ReaderFunc(func() (xml.Token, error) {
		if i >= len(toks) {
			return nil, io.EOF
		}
		i++
		return xml.CopyToken(toks[i-1]), nil
	})
}

var errBadRequest = stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}

// info answers disco#info: identity store/file, the features, and the
// maximum file size in XEP-0363's form (XEP-0128).
func (m *Module) info(st *element.Stanza, q xml.StartElement) (xml.TokenReader, error) {
	switch {
	case st.Type != "get":
		return nil, errBadRequest
	case element.Attr(q, "node") != "":
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	}
	return caps.Info{
		Identities: []caps.Identity{{Category: "store", Type: "file", Name: "HTTP File Upload"}},
		Features:   []string{nsInfo, nsItems, NS},
		Forms: []caps.Form{{Type: NS, Fields: []caps.Field{
			{Var: "max-file-size", Type: "text-single", Values: []string{strconv.FormatInt(m.opts.MaxFileBytes, 10)}},
		}}},
	}.Query(""), nil
}

// items answers disco#items: the service has none.
func (m *Module) items(st *element.Stanza, q xml.StartElement) (xml.TokenReader, error) {
	if st.Type != "get" {
		return nil, errBadRequest
	}
	return xmlstream.Wrap(nil, q.Copy()), nil
}

// slot answers a slot request from requester, a user of host.
func (m *Module) slot(ctx context.Context, requester jid.JID, host string, st *element.Stanza, q xml.StartElement) (xml.TokenReader, error) {
	if st.Type != "get" {
		return nil, errBadRequest
	}
	if requester.Localpart() == "" || requester.Domainpart() != host {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed, Text: map[string]string{
			"": "only users of " + host + " may upload here",
		}}
	}
	var name, size, ctype string
	for _, a := range q.Attr {
		switch a.Name.Local {
		case "filename":
			name = a.Value
		case "size":
			size = a.Value
		case "content-type":
			ctype = a.Value
		}
	}
	req, err := ParseRequest(name, size, ctype)
	if err != nil {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: map[string]string{"": err.Error()}}
	}
	if req.Size > m.opts.MaxFileBytes {
		return nil, fileTooLarge{max: m.opts.MaxFileBytes}
	}
	now := m.opts.Now()
	slot := storage.UploadSlot{
		ID:          randid.Token(),
		Host:        host,
		Username:    requester.Localpart(),
		Filename:    req.Filename,
		Size:        req.Size,
		ContentType: req.ContentType,
		Created:     now,
		// Whole seconds: what the store keeps and the PUT URL carries.
		Expires: time.Unix(now.Add(m.opts.SlotLifetime).Unix(), 0),
	}
	lim := storage.UploadLimits{
		Quota: storage.Quota{Count: m.opts.QuotaFiles, Bytes: m.opts.QuotaBytes},
		Total: m.opts.TotalBytes,
	}
	if err := m.store.ReserveUpload(ctx, slot, lim, now); errors.Is(err, storage.ErrQuota) {
		m.logger.Info("slot refused: quota", "jid", requester.Bare().String(), "size", req.Size, "err", err)
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: map[string]string{
			"": "upload quota reached: files are deleted when their lifetime ends, unused slots when they expire",
		}}
	} else if err != nil {
		return nil, err
	}
	get := m.getURL(host, slot.ID, slot.Filename)
	put := get + "?" + url.Values{"e": {strconv.FormatInt(slot.Expires.Unix(), 10)}, "v": {m.sign(slot.ID, slot.Expires.Unix())}}.Encode()
	m.logger.Debug("slot issued", "jid", requester.Bare().String(), "slot", slot.ID, "size", slot.Size, "type", slot.ContentType)
	return xmlstream.Wrap(xmlstream.MultiReader(
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "put"}, Attr: []xml.Attr{{Name: xml.Name{Local: "url"}, Value: put}}}),
		xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: "get"}, Attr: []xml.Attr{{Name: xml.Name{Local: "url"}, Value: get}}}),
	), xml.StartElement{Name: xml.Name{Space: NS, Local: "slot"}}), nil
}

// getURL is the download URL of a file.
func (m *Module) getURL(host, id, name string) string {
	return strings.TrimRight(m.opts.BaseURL(host), "/") + PathPrefix + id + "/" + url.PathEscape(name)
}

// sign is the MAC a PUT URL carries: HMAC-SHA-256 of the slot id and its
// expiry under the server's secret, in hex.
func (m *Module) sign(id string, expires int64) string {
	mac := hmac.New(sha256.New, m.secret)
	fmt.Fprintf(mac, "PUT %s %d", id, expires)
	return hex.EncodeToString(mac.Sum(nil))
}

// Kick asks the sweeper for a sweep now, without waiting.
func (m *Module) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}
