package upload

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"ottr.im/ottr/internal/randid"
	"ottr.im/ottr/storage"
)

// ParsePath splits the escaped path of a request under PathPrefix into
// the slot id (randid.TokenLen lower-case hex characters) and the file
// name (one unescaped path segment), and reports whether it is one.
func ParsePath(escaped string) (id, name string, ok bool) {
	rest, found := strings.CutPrefix(escaped, PathPrefix)
	if !found {
		return "", "", false
	}
	id, esc, found := strings.Cut(rest, "/")
	if !found || !isSlotID(id) || esc == "" || strings.Contains(esc, "/") {
		return "", "", false
	}
	name, err := url.PathUnescape(esc)
	if err != nil || name == "" {
		return "", "", false
	}
	return id, name, true
}

// isSlotID reports whether s has the form of randid.Token.
func isSlotID(s string) bool {
	if len(s) != randid.TokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ServeHTTP serves the files under PathPrefix: PUT to a slot's signed URL
// uploads its file once, GET and HEAD download it, OPTIONS answers a CORS
// preflight. Every answer allows any origin: the URLs are the only
// credentials (no cookie or header is ever read), so a page of any origin
// may use one it was given, as web clients do.
func (m *Module) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Server", "ottr")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Content-Disposition, Content-Length, ETag")
	switch r.Method {
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "7200")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet, http.MethodHead:
		m.serveFile(w, r)
	case http.MethodPut:
		m.servePut(w, r)
	default:
		h.Set("Allow", "GET, HEAD, PUT, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// path of a slot's file, and of the file being written.
func (m *Module) path(id string) string     { return filepath.Join(m.files, id) }
func (m *Module) partPath(id string) string { return filepath.Join(m.files, id+".part") }

// servePut uploads a slot's file: the URL's MAC and expiry, then the slot
// (claimed: one PUT at a time, none once done), then the headers against
// it, then the body, which must have exactly the slot's size.
func (m *Module) servePut(w http.ResponseWriter, r *http.Request) {
	// Until the body is read with deadlines of its own (receive), what
	// the server reads of it after a refusal is bounded too.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(m.opts.IdleTimeout))
	id, name, ok := ParsePath(r.URL.EscapedPath())
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	e, err := strconv.ParseInt(q.Get("e"), 10, 64)
	if err != nil || !m.validMAC(id, e, q.Get("v")) {
		http.Error(w, "this URL does not allow uploads", http.StatusForbidden)
		return
	}
	now := m.opts.Now()
	if now.Unix() >= e {
		http.Error(w, "the upload slot expired", http.StatusForbidden)
		return
	}
	slot, err := m.store.ClaimUpload(r.Context(), id, now)
	switch {
	case errors.Is(err, storage.ErrUploadExpired):
		http.Error(w, "the upload slot expired", http.StatusForbidden)
		return
	case errors.Is(err, storage.ErrUploadUsed):
		http.Error(w, "the upload slot was used", http.StatusConflict)
		return
	case errors.Is(err, storage.ErrNotFound):
		http.Error(w, "not found", http.StatusNotFound)
		return
	case err != nil:
		m.logger.Error("claiming a slot failed", "slot", id, "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	code, msg := m.receive(w, r, slot, name, now)
	if code != http.StatusCreated {
		// A later PUT may try again, until the slot expires.
		if err := m.store.ReleaseUpload(context.WithoutCancel(r.Context()), id); err != nil {
			m.logger.Error("releasing a slot failed", "slot", id, "err", err)
		}
		m.logger.Info("upload refused", "slot", id, "status", code, "reason", msg)
		http.Error(w, msg, code)
		return
	}
	m.logger.Debug("upload complete", "slot", id, "size", slot.Size, "user", slot.Username+"@"+slot.Host)
	w.Header().Set("Location", m.getURL(slot.Host, slot.ID, slot.Filename))
	w.WriteHeader(http.StatusCreated)
}

// validMAC reports whether mac (hex) signs the slot id and expiry e.
func (m *Module) validMAC(id string, e int64, mac string) bool {
	got, err := hex.DecodeString(mac)
	if err != nil {
		return false
	}
	want, _ := hex.DecodeString(m.sign(id, e))
	return hmac.Equal(got, want)
}

// receive checks a claimed slot's PUT against it and writes the file, and
// returns http.StatusCreated, or the status and reason of a refusal
// (nothing of the file is then left on disk).
func (m *Module) receive(w http.ResponseWriter, r *http.Request, slot storage.UploadSlot, name string, now time.Time) (int, string) {
	switch {
	case name != slot.Filename:
		return http.StatusNotFound, "not found"
	case r.ContentLength > slot.Size:
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("the slot is for %d bytes", slot.Size)
	case r.ContentLength >= 0 && r.ContentLength < slot.Size:
		return http.StatusBadRequest, fmt.Sprintf("the slot is for %d bytes", slot.Size)
	case !sameMediaType(r.Header.Get("Content-Type"), slot.ContentType):
		return http.StatusUnsupportedMediaType, "the slot is for Content-Type " + slot.ContentType
	}
	part := m.partPath(slot.ID)
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		m.logger.Error("creating an upload failed", "err", err)
		return http.StatusInternalServerError, "internal server error"
	}
	// The whole PUT within the slot's lifetime, and never idle long: a
	// client trickling bytes holds a connection for a bounded time.
	body := &idleReader{r: r.Body, rc: http.NewResponseController(w), idle: m.opts.IdleTimeout, end: now.Add(m.opts.SlotLifetime)}
	n, err := io.Copy(f, io.LimitReader(body, slot.Size+1))
	if err == nil && n == slot.Size {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	code, msg := http.StatusCreated, ""
	switch {
	case n > slot.Size:
		code, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("the slot is for %d bytes", slot.Size)
	case err != nil:
		code, msg = http.StatusBadRequest, "the upload broke off"
	case n < slot.Size:
		code, msg = http.StatusBadRequest, fmt.Sprintf("the slot is for %d bytes, %d came", slot.Size, n)
	default:
		if err = os.Rename(part, m.path(slot.ID)); err != nil {
			m.logger.Error("storing an upload failed", "err", err)
			code, msg = http.StatusInternalServerError, "internal server error"
		} else if err = m.store.CompleteUpload(context.WithoutCancel(r.Context()), slot.ID, m.opts.Now()); err != nil {
			if !errors.Is(err, storage.ErrNotFound) {
				m.logger.Error("recording an upload failed", "slot", slot.ID, "err", err)
			}
			os.Remove(m.path(slot.ID))
			code, msg = http.StatusInternalServerError, "internal server error"
		}
	}
	if code != http.StatusCreated {
		os.Remove(part)
	}
	return code, msg
}

// idleReader reads r with a read deadline idle ahead of each read, never
// past end.
type idleReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
	end  time.Time
}

func (ir *idleReader) Read(p []byte) (int, error) {
	d := time.Now().Add(ir.idle)
	if d.After(ir.end) {
		d = ir.end
	}
	// http.ErrNotSupported only in tests over a ResponseRecorder.
	_ = ir.rc.SetReadDeadline(d)
	return ir.r.Read(p)
}

// idleWriter writes to w with a write deadline idle ahead of each write.
type idleWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (iw idleWriter) Write(p []byte) (int, error) {
	_ = iw.rc.SetWriteDeadline(time.Now().Add(iw.idle))
	return iw.ResponseWriter.Write(p)
}

// serveFile answers a GET or HEAD of a file that is done (ranges and
// conditional requests by http.ServeContent), with the headers that keep
// a browser from running it in the server's origin.
func (m *Module) serveFile(w http.ResponseWriter, r *http.Request) {
	id, name, ok := ParsePath(r.URL.EscapedPath())
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	slot, err := m.store.UploadedFile(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && name != slot.Filename) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	} else if err != nil {
		m.logger.Error("looking up a file failed", "slot", id, "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	f, err := os.Open(m.path(id))
	if err != nil {
		m.logger.Warn("an uploaded file is missing", "slot", id, "err", err)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	defer f.Close()
	h := w.Header()
	in := inline(slot.ContentType)
	h.Set("Content-Type", slot.ContentType)
	h.Set("Content-Disposition", contentDisposition(in, slot.Filename))
	h.Set("X-Content-Type-Options", "nosniff")
	csp := "default-src 'none'; frame-ancestors 'none'"
	if in {
		csp += "; img-src 'self'; media-src 'self'"
	} else {
		csp += "; sandbox"
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("Cache-Control", "private, max-age=86400, immutable")
	h.Set("ETag", `"`+id+`"`)
	http.ServeContent(idleWriter{ResponseWriter: w, rc: http.NewResponseController(w), idle: m.opts.IdleTimeout}, r, "", slot.Uploaded, f)
}
