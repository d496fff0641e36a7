package web

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ottr.im/ottr/c2s"
	"ottr.im/ottr/internal/randid"
)

// BOSH (XEP-0124, XEP-0206) settings that are not configurable.
const (
	boshVersion = "1.11" // the XEP-0124 version implemented
	boshMaxHold = 1      // requests held at once (requests = hold + 1)
	boshPolling = 2      // the shortest polling interval announced, seconds
	// boshBodySlack is what a request body may hold beyond one element
	// at the size limit: the <body/> wrapper and more small stanzas.
	boshBodySlack = 64 << 10
	// boshPrebindSlack is what a request body of a session not bound yet
	// (or a session creation) may hold beyond one element at the pre-bind
	// limit: the <body/> wrapper.
	boshPrebindSlack = 2 << 10
	// maxRID is the largest rid XEP-0124 §14 lets a client start with
	// (2^53 - 1), far from overflowing the window arithmetic.
	maxRID = 1<<53 - 1
)

// boshBody is one request's <body/>.
type boshBody struct {
	rid         uint64
	hasRID      bool
	sid, to     string
	lang, typ   string
	ver         string
	wait, hold  int
	hasHold     bool
	restart     bool
	xmppVersion string
	payload     []byte // the children, as the client wrote them
}

var errBadBody = errors.New("web: not a BOSH <body/>")

// parseBody decodes a request body. The children are checked to be
// well-formed and kept as raw bytes: c2s's guard sees them as the client
// wrote them.
func parseBody(data []byte) (*boshBody, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var start xml.StartElement
	for start.Name.Local == "" {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errBadBody, err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, errBadBody
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, errBadBody
			}
		case xml.StartElement:
			start = t
		default:
			return nil, errBadBody
		}
	}
	if start.Name.Space != nsBOSH || start.Name.Local != "body" {
		return nil, errBadBody
	}
	b := &boshBody{}
	for _, a := range start.Attr {
		v := a.Value
		switch a.Name {
		case xml.Name{Local: "rid"}:
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: rid %q", errBadBody, v)
			}
			b.rid, b.hasRID = n, true
		case xml.Name{Local: "sid"}:
			b.sid = v
		case xml.Name{Local: "to"}:
			b.to = v
		case xml.Name{Local: "type"}:
			b.typ = v
		case xml.Name{Local: "ver"}:
			b.ver = v
		case xml.Name{Local: "wait"}:
			b.wait, _ = strconv.Atoi(v)
		case xml.Name{Local: "hold"}:
			n, err := strconv.Atoi(v)
			b.hold, b.hasHold = n, err == nil
		case xml.Name{Space: nsXML, Local: "lang"}:
			b.lang = v
		case xml.Name{Space: nsXBOSH, Local: "version"}:
			b.xmppVersion = v
		case xml.Name{Space: nsXBOSH, Local: "restart"}:
			b.restart = v == "true" || v == "1"
		}
	}
	from := d.InputOffset()
	depth := 0
	for {
		at := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errBadBody, err)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 {
				b.payload = data[from:at]
				return b, trailing(d)
			}
			depth--
		}
	}
}

// trailing checks that only whitespace follows the body.
func trailing(d *xml.Decoder) error {
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", errBadBody, err)
		}
		if cd, ok := tok.(xml.CharData); !ok || len(bytes.TrimSpace(cd)) > 0 {
			return errBadBody
		}
	}
}

// boshSession is one BOSH session, and the net.Conn c2s runs over: the
// children of the client's bodies are its input, after a synthetic stream
// header at creation and at each restart; what c2s writes is cut into
// top-level elements that wait for the next held request.
type boshSession struct {
	h             *Handler
	sid           string
	to, lang      string
	ver           string
	wait          time.Duration
	hold          int
	local, remote net.Addr
	rd, wd        *deadline
	maxPending    int
	lastSeen      atomic.Int64 // last request, unix nanoseconds
	// bound is set once c2s bound a resource: requests may then be as
	// large as a stanza, not only as the pre-bind limit.
	bound atomic.Bool

	mu        sync.Mutex
	in        []byte        // client bytes for c2s
	inEOF     bool          // the stream ended: Read reports io.EOF once in is read
	inWake    chan struct{} // closed and replaced when in grows or ends
	split     *splitter
	out       [][]byte // elements for the client
	outBytes  int
	outWake   chan struct{} // closed and replaced when out is taken
	streamErr []byte        // the stream error c2s sent, if any
	condition string        // its BOSH condition
	authid    string        // the stream id
	from      string        // the host, from c2s's stream header

	lastRID  uint64                  // the last rid processed
	held     []*boshRequest          // waiting for data, oldest first
	early    map[uint64]*boshRequest // ahead of a missing rid
	cache    map[uint64][]byte       // responses sent, by rid
	closing  *boshRequest            // the client's terminate request
	created  bool                    // the creation response was sent
	ended    bool                    // terminated: every request gets term
	term     []byte
	closed   bool // c2s closed the conn
	inactive *time.Timer
}

// boshRequest is one HTTP request of a session, waiting for its answer.
type boshRequest struct {
	rid   uint64
	body  *boshBody
	resp  chan []byte // buffered: the answer
	timer *time.Timer
}

func newRequest(b *boshBody) *boshRequest {
	return &boshRequest{rid: b.rid, body: b, resp: make(chan []byte, 1)}
}

var (
	_ c2s.Activity = (*boshSession)(nil)
	_ Conn         = (*boshSession)(nil)
)

// serveBOSH handles one BOSH request: CORS, session creation, or a request
// of an existing session, held until there is something to answer.
func (h *Handler) serveBOSH(w http.ResponseWriter, r *http.Request) {
	if !h.originAllowed(r) {
		h.refuseOrigin(w, r, "bosh")
		return
	}
	if o := r.Header.Get("Origin"); o != "" {
		hd := w.Header()
		hd.Set("Access-Control-Allow-Origin", o)
		hd.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		hd.Set("Access-Control-Allow-Headers", "Content-Type")
		hd.Set("Access-Control-Max-Age", "86400")
		hd.Add("Vary", "Origin")
	}
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodGet, http.MethodHead:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "This is the BOSH endpoint (XEP-0124, XEP-0206) of an ottr XMPP server: point a BOSH client at this URL.\n")
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(h.opts.WriteTimeout))
	limit := int64(h.opts.MaxStanza + boshBodySlack)
	body := http.MaxBytesReader(w, r.Body, limit)
	// Until its session is bound a request is small (security review #5):
	// read that much, and the rest only for a bound session's request.
	small := int64(h.opts.MaxPrebind + boshPrebindSlack)
	data, err := io.ReadAll(io.LimitReader(body, small+1))
	if err == nil && int64(len(data)) > small {
		if s := h.sessionOf(data); s == nil || !s.bound.Load() {
			if s != nil {
				s.terminate("policy-violation", "request body over the pre-bind limit")
			}
			h.logger.Info("bosh request too large before bind", "remote", h.clientAddr(r).String(), "limit", small)
			w.Header().Set("Connection", "close")
			writeBOSH(w, rc, h.opts.WriteTimeout, http.StatusRequestEntityTooLarge, terminateBody("policy-violation", nil))
			rc.SetReadDeadline(time.Now()) // nor is the rest read
			return
		}
		var rest []byte
		rest, err = io.ReadAll(body)
		data = append(data, rest...)
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		h.logger.Info("bosh request too large", "remote", h.clientAddr(r).String(), "limit", limit)
		writeBOSH(w, rc, h.opts.WriteTimeout, http.StatusRequestEntityTooLarge, terminateBody("policy-violation", nil))
		return
	case err != nil:
		return // the client went away
	}
	// The body is in: no read deadline while the request is held (net/http
	// reads on in the background to notice a client that goes away).
	rc.SetReadDeadline(time.Time{})
	b, err := parseBody(data)
	if err != nil {
		h.logger.Info("bad bosh request", "remote", h.clientAddr(r).String(), "err", err)
		writeBOSH(w, rc, h.opts.WriteTimeout, http.StatusBadRequest, terminateBody("bad-request", nil))
		return
	}
	var s *boshSession
	var req *boshRequest
	var answer []byte
	if b.sid == "" {
		s, req, answer = h.createBOSH(r, b)
	} else {
		h.mu.Lock()
		s = h.bosh[b.sid]
		h.mu.Unlock()
		if s == nil {
			answer = terminateBody("item-not-found", nil)
		} else {
			req, answer = s.receive(b)
		}
	}
	if req != nil {
		select {
		case answer = <-req.resp:
		case <-r.Context().Done():
			s.abandon(req)
			return
		}
	}
	writeBOSH(w, rc, h.opts.WriteTimeout, http.StatusOK, answer)
}

// sessionOf returns the session named by the sid of the <body/> start tag
// at the beginning of data (a request's first bytes), or nil. It reads
// the sid parseBody reads from the whole body (FuzzParseBody checks).
func (h *Handler) sessionOf(data []byte) *boshSession {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.RawToken()
		if err != nil {
			return nil
		}
		switch t := tok.(type) {
		case xml.ProcInst, xml.CharData:
		case xml.StartElement:
			// The last sid, as parseBody reads it.
			sid := ""
			for _, a := range t.Attr {
				if a.Name.Space == "" && a.Name.Local == "sid" {
					sid = a.Value
				}
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.bosh[sid]
		default:
			return nil
		}
	}
}

func writeBOSH(w http.ResponseWriter, rc *http.ResponseController, timeout time.Duration, code int, body []byte) {
	rc.SetWriteDeadline(time.Now().Add(timeout))
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(body)
}

// terminateBody is a <body type='terminate'/> with an optional condition
// and payload.
func terminateBody(condition string, payload [][]byte) []byte {
	var b bytes.Buffer
	b.WriteString("<body xmlns='" + nsBOSH + "' type='terminate'")
	if condition != "" {
		b.WriteString(" condition='" + condition + "'")
	}
	if len(payload) == 0 {
		b.WriteString("/>")
		return b.Bytes()
	}
	b.WriteString(">")
	for _, p := range payload {
		b.Write(p)
	}
	b.WriteString("</body>")
	return b.Bytes()
}

// createBOSH starts a session for a creation request, whose answer (with
// the session's attributes and the stream features) is held like any
// other.
func (h *Handler) createBOSH(r *http.Request, b *boshBody) (*boshSession, *boshRequest, []byte) {
	if !b.hasRID || b.rid == 0 || b.rid > maxRID {
		return nil, nil, terminateBody("bad-request", nil)
	}
	remote := h.clientAddr(r)
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, nil, terminateBody("system-shutdown", nil)
	}
	if !h.opts.Admit(remote.Addr(), true) {
		return nil, nil, terminateBody("policy-violation", nil)
	}
	wait := time.Duration(b.wait) * time.Second
	wait = min(max(wait, time.Second), h.opts.MaxWait)
	hold := boshMaxHold
	if b.hasHold {
		hold = min(max(b.hold, 0), boshMaxHold)
	}
	s := &boshSession{
		h:          h,
		sid:        randid.Token(),
		to:         b.to,
		lang:       cmp(b.lang, "en"),
		ver:        boshVer(b.ver),
		wait:       wait,
		hold:       hold,
		local:      localAddr(r),
		remote:     tcpAddr(remote),
		rd:         newDeadline(),
		wd:         newDeadline(),
		maxPending: 2*h.opts.MaxStanza + boshBodySlack,
		inWake:     make(chan struct{}),
		outWake:    make(chan struct{}),
		split:      newSplitter(outputLimit(h.opts.MaxStanza)),
		lastRID:    b.rid - 1,
		early:      make(map[uint64]*boshRequest),
		cache:      make(map[uint64][]byte),
	}
	s.lastSeen.Store(time.Now().UnixNano())
	h.mu.Lock()
	h.bosh[s.sid] = s
	h.mu.Unlock()
	h.logger.Debug("bosh session", "sid", s.sid, "remote", remote.String(), "origin", r.Header.Get("Origin"), "wait", wait, "hold", hold)

	req, answer := s.receive(b)
	go func() {
		if !h.opts.Serve(s) {
			s.terminate("system-shutdown", nil)
		}
	}()
	return s, req, answer
}

// boshVer is the protocol version to answer: the client's, when it is
// older than ours.
func boshVer(client string) string {
	maj, min, ok := strings.Cut(client, ".")
	if !ok {
		return boshVersion
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(min)
	if err1 != nil || err2 != nil || a > 1 || (a == 1 && b >= 11) {
		return boshVersion
	}
	return fmt.Sprintf("%d.%d", a, b)
}

// requests is how many requests the client may have open at once.
func (s *boshSession) requests() uint64 { return uint64(s.hold + 1) }

// receive takes one request of the session and returns either the request
// to wait on or an answer at once (a cached response, a terminate).
func (s *boshSession) receive(b *boshBody) (*boshRequest, []byte) {
	s.lastSeen.Store(time.Now().UnixNano())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, s.term
	}
	if !b.hasRID {
		s.terminateLocked("bad-request", "request without rid")
		return nil, s.term
	}
	switch {
	case b.rid <= s.lastRID:
		// A request seen before: the client did not get the answer.
		if resp, ok := s.cache[b.rid]; ok {
			return nil, resp
		}
		for i, old := range s.held {
			if old.rid == b.rid {
				// Still held: the new request takes its place.
				req := newRequest(b)
				old.timer.Stop()
				req.timer = time.AfterFunc(s.wait, func() { s.expire(req) })
				s.held[i] = req
				old.resp <- s.emptyBody()
				return req, nil
			}
		}
		s.terminateLocked("item-not-found", fmt.Sprintf("rid %d is no longer known", b.rid))
		return nil, s.term
	case b.rid > s.lastRID+s.requests():
		s.terminateLocked("item-not-found", fmt.Sprintf("rid %d is past the window (last %d)", b.rid, s.lastRID))
		return nil, s.term
	}
	req := newRequest(b)
	if old, ok := s.early[b.rid]; ok {
		old.resp <- s.emptyBody()
	}
	s.early[b.rid] = req
	// Process in rid order what is now in sequence.
	for {
		next, ok := s.early[s.lastRID+1]
		if !ok {
			break
		}
		delete(s.early, next.rid)
		s.processLocked(next)
		if s.ended {
			break
		}
	}
	// An early request waits for the missing ones; a request that ended
	// the session already has its answer.
	return req, nil
}

// processLocked hands a request's payload to c2s and holds the request.
func (s *boshSession) processLocked(req *boshRequest) {
	s.lastRID = req.rid
	b := req.body
	if s.inactive != nil {
		s.inactive.Stop()
		s.inactive = nil
	}
	if len(b.payload) > 0 {
		s.in = append(s.in, b.payload...)
	}
	if b.sid == "" || b.restart {
		// Session creation, or a restart after SASL (XEP-0206 §5): a new
		// stream header for c2s.
		s.in = append(s.in, s.streamHeader()...)
	}
	maxIn := s.maxPending
	if !s.bound.Load() {
		maxIn = 2 * (s.h.opts.MaxPrebind + boshPrebindSlack)
	}
	if len(s.in) > maxIn {
		s.terminateLocked("policy-violation", "client input piling up")
		return
	}
	if b.typ == "terminate" {
		// The client ends the session (XEP-0124 §12): c2s reads the end
		// of its stream, and this request gets the terminate body once
		// c2s closed its side, with whatever it wrote before.
		s.in = append(s.in, "</stream:stream>"...)
		s.inEOF = true
		s.wakeIn()
		s.closing = req
		req.timer = time.AfterFunc(s.wait, func() { s.terminate("", "client terminated") })
		s.flushLocked()
		return
	}
	s.wakeIn()
	s.held = append(s.held, req)
	req.timer = time.AfterFunc(s.wait, func() { s.expire(req) })
	s.flushLocked()
}

// streamHeader is the stream header c2s reads for the client.
func (s *boshSession) streamHeader() string {
	return "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" +
		escapeAttr(s.to) + "' version='1.0' xml:lang='" + escapeAttr(s.lang) + "'>"
}

// expire answers a request held for wait.
func (s *boshSession) expire(req *boshRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.held {
		if r == req {
			s.answerLocked(req)
			return
		}
	}
}

// abandon forgets a request whose client went away before its answer.
func (s *boshSession) abandon(req *boshRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.held {
		if r == req {
			r.timer.Stop()
			s.held = append(s.held[:i], s.held[i+1:]...)
			s.idleLocked()
			return
		}
	}
	for rid, r := range s.early {
		if r == req {
			delete(s.early, rid)
		}
	}
}

// flushLocked answers held requests: the oldest gets whatever is
// waiting, and no more than hold requests stay held.
func (s *boshSession) flushLocked() {
	for len(s.held) > 0 && (len(s.out) > 0 || len(s.held) > s.hold) {
		s.answerLocked(s.held[0])
	}
}

// answerLocked answers req with every element waiting.
func (s *boshSession) answerLocked(req *boshRequest) {
	for i, r := range s.held {
		if r == req {
			s.held = append(s.held[:i], s.held[i+1:]...)
			break
		}
	}
	if req.timer != nil {
		req.timer.Stop()
	}
	var b bytes.Buffer
	b.WriteString("<body xmlns='" + nsBOSH + "'")
	if !s.created {
		s.created = true
		fmt.Fprintf(&b, " xmlns:xmpp='%s' xmlns:stream='%s' sid='%s' wait='%s' requests='%d' hold='%d'"+
			" inactivity='%s' polling='%d' ver='%s' from='%s' xmpp:version='1.0' xmpp:restartlogic='true'",
			nsXBOSH, nsStream, s.sid, seconds(s.wait), s.requests(), s.hold,
			seconds(s.h.opts.Inactivity), boshPolling, s.ver, escapeAttr(cmp(s.from, s.to)))
		if s.authid != "" {
			fmt.Fprintf(&b, " authid='%s'", escapeAttr(s.authid))
		}
	}
	if len(s.out) == 0 {
		b.WriteString("/>")
	} else {
		b.WriteString(">")
		for _, el := range s.out {
			b.Write(el)
		}
		b.WriteString("</body>")
		s.out, s.outBytes = nil, 0
		close(s.outWake)
		s.outWake = make(chan struct{})
	}
	resp := b.Bytes()
	s.cache[req.rid] = resp
	for rid := range s.cache {
		if rid+s.requests() <= s.lastRID {
			delete(s.cache, rid)
		}
	}
	req.resp <- resp
	s.idleLocked()
}

func (s *boshSession) emptyBody() []byte { return []byte("<body xmlns='" + nsBOSH + "'/>") }

// idleLocked starts the inactivity timer when no request is held.
func (s *boshSession) idleLocked() {
	if len(s.held) > 0 || s.ended || s.inactive != nil {
		return
	}
	s.inactive = time.AfterFunc(s.h.opts.Inactivity, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.held) == 0 && !s.ended {
			s.terminateLocked("", "inactivity timeout")
		}
	})
}

// terminate ends the session from outside c2s.
func (s *boshSession) terminate(condition string, reason any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.terminateLocked(condition, reason)
}

// terminateLocked ends the session: every request, held or to come, gets
// a terminate body with what was still waiting, and c2s reads the end of
// its stream.
func (s *boshSession) terminateLocked(condition string, reason any) {
	if s.ended {
		return
	}
	s.ended = true
	if condition == "" {
		condition = s.condition
	}
	s.term = terminateBody(condition, s.out)
	s.out, s.outBytes = nil, 0
	close(s.outWake)
	s.outWake = make(chan struct{})
	for _, r := range s.held {
		r.timer.Stop()
		r.resp <- s.term
	}
	s.held = nil
	for _, r := range s.early {
		r.resp <- s.term
	}
	clear(s.early)
	if r := s.closing; r != nil {
		r.timer.Stop()
		r.resp <- s.term
	}
	if s.inactive != nil {
		s.inactive.Stop()
	}
	s.inEOF = true
	s.wakeIn()
	attrs := []any{"sid", s.sid, "remote", s.remote.String()}
	if condition != "" {
		attrs = append(attrs, "condition", condition)
	}
	if reason != nil {
		attrs = append(attrs, "reason", reason)
	}
	s.h.logger.Debug("bosh session ended", attrs...)
	// The session stays known for a while, so that a request that was
	// not held gets the terminate body instead of item-not-found.
	time.AfterFunc(s.h.opts.Inactivity, func() {
		s.h.mu.Lock()
		if s.h.bosh[s.sid] == s {
			delete(s.h.bosh, s.sid)
		}
		s.h.mu.Unlock()
	})
}

func (s *boshSession) wakeIn() {
	close(s.inWake)
	s.inWake = make(chan struct{})
}

// onEvent takes what c2s wrote, under s.mu.
func (s *boshSession) onEvent(ev event, data []byte, h streamHeader) error {
	switch ev {
	case evHeader:
		s.authid, s.from = h.id, h.from
	case evElement:
		el := bytes.Clone(data)
		if cond, ok := streamErrorCondition(el); ok {
			s.streamErr = el
			s.condition = boshCondition(cond)
		}
		s.out = append(s.out, el)
		s.outBytes += len(el)
	case evEnd:
		s.terminateLocked("", "stream closed")
	}
	return nil
}

// streamErrorCondition recognizes a stream error element and returns its
// condition.
func streamErrorCondition(el []byte) (string, bool) {
	if !bytes.HasPrefix(el, []byte("<stream:error")) && !bytes.HasPrefix(el, []byte(`<error xmlns="`+nsStream+`"`)) {
		return "", false
	}
	var e struct {
		Children []struct {
			XMLName xml.Name
		} `xml:",any"`
	}
	xml.Unmarshal(el, &e)
	for _, c := range e.Children {
		if c.XMLName.Local != "text" {
			return c.XMLName.Local, true
		}
	}
	return "undefined-condition", true
}

// boshCondition maps a stream error to XEP-0124's terminate condition:
// the ones BOSH has its own name for, else remote-stream-error with the
// stream error in the body (XEP-0206 §6).
func boshCondition(streamCond string) string {
	switch streamCond {
	case "system-shutdown", "host-unknown", "improper-addressing":
		return streamCond
	}
	return "remote-stream-error"
}

// The net.Conn c2s runs over.

// Read returns the client's bytes.
func (s *boshSession) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		if len(s.in) > 0 {
			n := copy(p, s.in)
			s.in = s.in[n:]
			if len(s.in) == 0 {
				s.in = nil
			}
			s.mu.Unlock()
			return n, nil
		}
		if s.closed {
			s.mu.Unlock()
			return 0, net.ErrClosed
		}
		if s.inEOF {
			s.mu.Unlock()
			return 0, io.EOF
		}
		wake := s.inWake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-s.rd.wait():
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// Write takes c2s's output. It blocks, like a full socket buffer, while
// more than maxPending bytes wait for a request.
func (s *boshSession) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.closed || s.ended {
		s.mu.Unlock()
		return 0, net.ErrClosed
	}
	if err := s.split.feed(p, s.onEvent); err != nil {
		// Nothing the client could parse: the session ends, with what
		// was complete before.
		s.h.logger.Warn("bosh session ended: server output not sent", "sid", s.sid, "remote", s.remote.String(), "err", err)
		s.terminateLocked("internal-server-error", err)
		s.mu.Unlock()
		return 0, err
	}
	if s.streamErr == nil {
		// (A stream error waits for the closing tag right behind it, to
		// go in the terminate body.)
		s.flushLocked()
	}
	for s.outBytes > s.maxPending && !s.ended && !s.closed {
		wake := s.outWake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-s.wd.wait():
			return 0, os.ErrDeadlineExceeded
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	return len(p), nil
}

// Close is c2s's end of the session.
func (s *boshSession) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.terminateLocked("", "connection closed")
	return nil
}

// Bound lifts the pre-bind limit on request bodies: c2s bound a
// resource.
func (s *boshSession) Bound() { s.bound.Store(true) }

// Transport names the transport for the operator ("ottr ctl sessions",
// the ottr_sessions metric).
func (s *boshSession) Transport() string { return "bosh" }

// LastActivity is the time of the client's last request: a poll shows it
// alive.
func (s *boshSession) LastActivity() time.Time { return time.Unix(0, s.lastSeen.Load()) }

func (s *boshSession) LocalAddr() net.Addr  { return s.local }
func (s *boshSession) RemoteAddr() net.Addr { return s.remote }

func (s *boshSession) SetDeadline(t time.Time) error {
	s.rd.set(t)
	s.wd.set(t)
	return nil
}

func (s *boshSession) SetReadDeadline(t time.Time) error  { s.rd.set(t); return nil }
func (s *boshSession) SetWriteDeadline(t time.Time) error { s.wd.set(t); return nil }
