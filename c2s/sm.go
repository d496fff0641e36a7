package c2s

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/randid"
)

// XEP-0198 stream management (urn:xmpp:sm:3): acks both ways and
// resumption of a session whose connection broke.
//
// Counting. The server's h counts the stanzas read from the client since
// <enable/> (the read loop's own, smState.inH). What it sends is counted
// when queued after <enabled/> (outbound.counted); the writer moves each
// counted stanza it wrote to smState.unacked, and the client's <a h=''/>
// drops them from its front: acked + len(unacked) is the number sent,
// modulo 2^32.
//
// Waiting. When the connection of a session that enabled resumption
// breaks (not a clean </stream:stream> and not a stream error), the
// session is not unbound: it keeps its resource and presence in the
// router, queues what is delivered, and waits with no goroutine and no
// link, up to its resumption time (a timer). A <resume/> on a new
// connection of the same user attaches that connection: <resumed/>, the
// unacknowledged stanzas after the client's h, then the queue. When the
// wait is over the session is unbound as a dropped one is, and every
// message it did not get acknowledged is routed again (Router.Reroute).

// nsSM is the namespace of XEP-0198 version 3.
const nsSM = "urn:xmpp:sm:3"

// DefaultResumeTimeout is Config.ResumeTimeout's default.
const DefaultResumeTimeout = 10 * time.Minute

// requestEvery is how many stanzas the server sends at most before it
// asks for an ack.
const requestEvery = 5

// ackRequest is the server's <r/>.
var ackRequest = []byte(`<r xmlns='urn:xmpp:sm:3'/>`)

// smState is a session's stream management state, guarded by its mutex
// except inH, which only the read loop touches (a resumption reads it once
// the old read loop stopped).
type smState struct {
	id  string        // the resumption id, "" when resumption is off
	max time.Duration // the longest wait for resumption

	inH uint32 // stanzas handled from the client

	acked        uint32 // the client's last h
	unacked      []*element.Stanza
	unackedBytes int
	sinceReq     int  // counted stanzas written since the last <r/>
	awaiting     bool // an <r/> went out and no <a/> came since
	timer        *time.Timer
}

// wantRequest reports whether an <r/> should follow the batch: after
// every requestEvery stanzas, or at once when none is awaited.
func (sm *smState) wantRequest(batch []outbound) bool {
	n := sm.sinceReq
	for _, it := range batch {
		if it.counted {
			n++
		}
	}
	return n > 0 && (n >= requestEvery || !sm.awaiting)
}

// sent records a batch handed to the writer: its counted stanzas are
// now unacknowledged, and an <r/> in it is awaited.
func (sm *smState) sent(batch []outbound) {
	for _, it := range batch {
		switch {
		case it.request:
			sm.sinceReq, sm.awaiting = 0, true
		case it.counted:
			sm.unacked = append(sm.unacked, it.st)
			sm.unackedBytes += it.size()
			sm.sinceReq++
		}
	}
}

// handledTooHigh is the error of an <a/> or <resume/> that acknowledges
// more than was sent (XEP-0198 §4): undefined-condition with
// <handled-count-too-high/>.
func handledTooHigh(h, sent uint32) stream.Error {
	return streamError(stream.UndefinedCondition, "").ApplicationError(xmlstream.Wrap(nil, xml.StartElement{
		Name: xml.Name{Space: nsSM, Local: "handled-count-too-high"},
		Attr: []xml.Attr{
			{Name: xml.Name{Local: "h"}, Value: strconv.FormatUint(uint64(h), 10)},
			{Name: xml.Name{Local: "send-count"}, Value: strconv.FormatUint(uint64(sent), 10)},
		},
	}))
}

// ackLocked applies the client's h: the stanzas it covers leave the
// unacknowledged ones. The caller holds s.mu.
func (s *Session) ackLocked(h uint32) error {
	sm := s.sm
	n := h - sm.acked // modulo 2^32, as the counters wrap
	if uint64(n) > uint64(len(sm.unacked)) {
		return handledTooHigh(h, sm.acked+uint32(len(sm.unacked)))
	}
	for _, st := range sm.unacked[:n] {
		sm.unackedBytes -= outbound{st: st}.size()
	}
	clear(sm.unacked[:n])
	sm.unacked = sm.unacked[n:]
	if len(sm.unacked) == 0 {
		sm.unacked = nil // let the backing array go
	}
	sm.acked = h
	sm.awaiting = false
	return nil
}

// resumable reports whether the session would wait for resumption if its
// connection broke.
func (s *Session) resumable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resumableLocked()
}

func (s *Session) resumableLocked() bool { return s.sm != nil && s.sm.id != "" && !s.over }

// Waiting reports whether the session waits for resumption (XEP-0198):
// bound, with its presence, but with no connection now. What is
// delivered to it meanwhile is queued for its return (push notifications
// are sent for it, see mod/push).
func (s *Session) Waiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting
}

// ackDue reports whether Tick should ask for an ack: stanzas went out that
// no <r/> covers and the stream has been quiet for AckDelay.
func (s *Session) ackDue(quiet time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sm != nil && s.sm.sinceReq > 0 && !s.sm.awaiting && quiet > s.cfg.AckDelay
}

// smElement handles a top-level element of the XEP-0198 namespace on a
// bound stream. It returns the stream error to close with and true when
// the stream ends.
func (s *Session) smElement(local string, raw []byte) (stream.Error, bool) {
	switch local {
	case "r":
		if s.sm == nil {
			return s.smFailed("unexpected-request")
		}
		s.DeliverRaw(fmt.Appendf(nil, "<a xmlns='%s' h='%d'/>", nsSM, s.sm.inH))
	case "a":
		if s.sm == nil {
			return s.smFailed("unexpected-request")
		}
		var a struct {
			H string `xml:"h,attr"`
		}
		h, err := parseH(raw, &a.H, &a)
		if err != nil {
			s.logger.Info("bad <a/>", "err", err)
			return streamError(stream.BadFormat, "<a/> needs h, a 32-bit count"), true
		}
		s.mu.Lock()
		err = s.ackLocked(h)
		more := s.sm.sinceReq > 0 && !s.sm.awaiting
		s.mu.Unlock()
		var se stream.Error
		if errors.As(err, &se) {
			s.logger.Info("client acknowledged more than was sent", "h", h)
			return se, true
		}
		if more {
			// Stanzas went out since the last <r/>: ask again.
			s.enqueue(outbound{raw: ackRequest, request: true})
		}
	case "enable":
		return s.enable(raw)
	case "resume":
		// After bind there is nothing to resume (XEP-0198 §5).
		return s.smFailed("unexpected-request")
	default:
		s.logger.Info("unsupported stream management element", "name", local)
		return streamError(stream.UnsupportedStanzaType, ""), true
	}
	return stream.Error{}, false
}

// parseH decodes raw into v and parses *h, the h attribute.
func parseH(raw []byte, h *string, v any) (uint32, error) {
	if err := xml.Unmarshal(raw, v); err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(*h, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("h %q: %w", *h, err)
	}
	return uint32(n), nil
}

// smFailed answers with <failed/> and the stanza error condition; the
// stream goes on.
func (s *Session) smFailed(condition string) (stream.Error, bool) {
	s.DeliverRaw(failedElement(condition))
	return stream.Error{}, false
}

func failedElement(condition string) []byte {
	return fmt.Appendf(nil, "<failed xmlns='%s'><%s xmlns='%s'/></failed>", nsSM, condition, nsStanzas)
}

// enable answers <enable/> (XEP-0198 §3): once per session, with
// resumption when asked and configured, for the shorter of the client's
// max and ResumeTimeout.
func (s *Session) enable(raw []byte) (stream.Error, bool) {
	if s.sm != nil {
		return s.smFailed("unexpected-request")
	}
	if _, err := s.startSM(raw, true); err != nil {
		return streamError(stream.BadFormat, ""), true
	}
	return stream.Error{}, false
}

// startSM enables stream management as <enable/> (raw) asks and returns
// the <enabled/> answer; queue puts it in the session's queue, as the
// first counted step, else the caller sends it (SASL2 Bind2, before the
// session has a link). The error is a malformed <enable/>.
func (s *Session) startSM(raw []byte, queue bool) ([]byte, error) {
	var req struct {
		Resume string `xml:"resume,attr"`
		Max    string `xml:"max,attr"`
	}
	if err := xml.Unmarshal(raw, &req); err != nil {
		return nil, err
	}
	sm := &smState{}
	enabled := fmt.Appendf(nil, "<enabled xmlns='%s'/>", nsSM)
	if (req.Resume == "true" || req.Resume == "1") && s.cfg.ResumeTimeout > 0 {
		sm.max = s.cfg.ResumeTimeout
		if secs, err := strconv.ParseUint(req.Max, 10, 32); err == nil && secs > 0 && time.Duration(secs)*time.Second < sm.max {
			sm.max = time.Duration(secs) * time.Second
		}
		sm.id = randid.Token()
		s.cfg.resumable.add(sm.id, s)
		maxSecs := int64((sm.max + time.Second - 1) / time.Second)
		enabled = fmt.Appendf(nil, "<enabled xmlns='%s' id='%s' resume='true' max='%d'/>", nsSM, sm.id, maxSecs)
	}
	// <enabled/> and the start of counting are one step: what is queued
	// after it is counted, what was queued before is not.
	s.mu.Lock()
	s.sm = sm
	if queue {
		s.queue = append(s.queue, outbound{raw: enabled})
		s.queueBytes += len(enabled)
		s.kick()
	}
	s.mu.Unlock()
	s.logger.Debug("stream management enabled", "resume", sm.id != "", "max", sm.max)
	return enabled, nil
}

// linkDone runs when the read loop of l returned; dropped says the
// connection broke rather than the stream being closed. It reports true
// when the session lives on without l: resumed on another link already,
// or waiting for resumption (then with no goroutine of its own). Else
// the caller ends the session.
func (s *Session) linkDone(l *link, dropped bool) bool {
	s.mu.Lock()
	s.reading = false
	s.idle.Broadcast()
	if s.on != l {
		// Resumed elsewhere (takeOver waited for this): that link's
		// read loop speaks for the session now.
		s.mu.Unlock()
		return true
	}
	if !dropped || s.closing || !s.resumableLocked() || s.ctx.Err() != nil {
		// A stream that was closed, or a session of a server shutting
		// down (its context is the server's): it ends now.
		if s.link == nil && !s.finished {
			// The writer let l go after a failed write, expecting the
			// session to wait for resumption. It ends instead, and its
			// writer must finish (and mark it done) on l, whose
			// writes now fail at once: a Close that came meanwhile
			// found no link to start it on.
			s.link = l
			if s.closing {
				s.kick()
			}
		}
		s.mu.Unlock()
		return false
	}
	s.on, s.link, s.waiting = nil, nil, true
	if s.sm.timer == nil {
		s.sm.timer = time.AfterFunc(s.sm.max, func() { s.expire("resumption timeout") })
	} else {
		s.sm.timer.Reset(s.sm.max)
	}
	// What offline delivery queued and was not written stays stored for
	// later: it is not sent on resumption.
	var lost []outbound
	kept := s.queue[:0]
	for _, it := range s.queue {
		if it.written != nil {
			lost = append(lost, it)
			s.queueBytes -= it.size()
			continue
		}
		kept = append(kept, it)
	}
	clear(s.queue[len(kept):])
	// A waiting session holds no more than what it keeps: the backing
	// arrays of the queue (the writer's last batch) and of the
	// unacknowledged stanzas go.
	s.queue = slices.Clip(slices.Clone(kept))
	if len(s.queue) == 0 {
		s.queue = nil
	}
	s.sm.unacked = slices.Clip(slices.Clone(s.sm.unacked))
	unacked := len(s.sm.unacked)
	s.mu.Unlock()
	l.stall()
	l.conn.Close()
	report(lost, false)
	s.logger.Info("connection lost, waiting for resumption", "for", s.sm.max, "unacked", unacked)
	return true
}

// expire ends a session waiting for resumption, as a dropped connection
// ends: unbound, its unacknowledged messages routed again.
func (s *Session) expire(reason string) {
	s.mu.Lock()
	if !s.waiting {
		s.mu.Unlock()
		return
	}
	s.waiting, s.closing = false, true
	s.sm.timer.Stop()
	for s.writing {
		s.idle.Wait()
	}
	s.mu.Unlock()
	s.logger.Info("session not resumed, ending it", "reason", reason)
	s.endDetached()
}

// endDetached ends a session that has no link: unbound, unacknowledged
// messages routed again, the writer marked done. s.closing is set.
func (s *Session) endDetached() {
	s.leave(stream.Error{})
	s.rerouteUnacked()
	s.mu.Lock()
	finished := s.finished
	s.finished = true
	s.mu.Unlock()
	if !finished {
		close(s.done)
	}
}

// rerouteUnacked hands the messages the client never acknowledged, sent
// or still queued, back to the router, oldest first, once the session is
// unbound. Other stanzas go: an iq result or a presence is stale by now.
func (s *Session) rerouteUnacked() {
	s.mu.Lock()
	if s.sm == nil {
		s.mu.Unlock()
		return
	}
	lost := s.dropQueueLocked()
	pending := s.sm.unacked
	s.sm.unacked, s.sm.unackedBytes = nil, 0
	s.mu.Unlock()
	report(lost, false)
	ctx := context.WithoutCancel(s.ctx)
	n := 0
	for _, st := range pending {
		if st.Name != "message" || st.Type == "error" || st.Type == "groupchat" {
			continue
		}
		s.cfg.Router.Reroute(ctx, s, st)
		n++
	}
	if n > 0 {
		s.logger.Info("unacknowledged messages routed again", "messages", n)
	}
}

// takeOver detaches the session from its link, if any, for a resumption:
// it waits until the old read loop and writer stopped, and reports false
// when the session ended or was closed first (then it ends it).
func (s *Session) takeOver() bool {
	s.mu.Lock()
	if s.closing || s.over || (s.on == nil && !s.waiting) {
		// Ended, or another resumption is taking it over now (it
		// detached the link and has not attached its own yet): one
		// connection at a time speaks for the session.
		s.mu.Unlock()
		return false
	}
	if s.sm.timer != nil {
		s.sm.timer.Stop()
	}
	s.waiting = false
	old := s.on
	s.on, s.link = nil, nil
	s.mu.Unlock()
	if old != nil {
		// The client came back before the old connection was seen to
		// break (XEP-0198 §5): it is closed.
		old.stall()
		old.conn.Close()
	}
	s.mu.Lock()
	for s.reading || s.writing {
		s.idle.Wait()
	}
	ok := !s.closing && !s.over
	// Closed meanwhile (a conflict, the server shutting down): no link
	// and no read loop are left to end the session, so it ends here.
	orphan := s.closing && !s.over
	s.mu.Unlock()
	if orphan {
		s.logger.Info("session closed while being resumed, ending it")
		s.endDetached()
	}
	return ok
}

// resumeOn attaches l to a session taken over: <resumed/> first (unless
// previd is empty: SASL2 sent it inside its <success/>), then the stanzas
// the client did not acknowledge, in order, then the queue.
func (s *Session) resumeOn(l *link, previd string) {
	s.mu.Lock()
	sm := s.sm
	q := make([]outbound, 0, 1+len(sm.unacked)+len(s.queue))
	if previd != "" {
		q = append(q, outbound{raw: fmt.Appendf(nil, "<resumed xmlns='%s' h='%d' previd='%s'/>", nsSM, sm.inH, previd)})
	}
	for _, st := range sm.unacked {
		q = append(q, outbound{st: st, counted: true})
	}
	resent := len(sm.unacked)
	sm.unacked, sm.unackedBytes, sm.sinceReq, sm.awaiting = nil, 0, 0, false
	q = append(q, s.queue...)
	s.queue, s.queueBytes = q, 0
	for _, it := range q {
		s.queueBytes += it.size()
	}
	s.attachLocked(l)
	s.mu.Unlock()
	s.logger.Info("session resumed", "resent", resent)
}

// errResumed ends mellium's negotiation when a <resume/> succeeded: the
// stream goes on as the resumed session's, without bind.
var errResumed = errors.New("c2s: session resumed")

// smFeature offers stream management once the client authenticated
// (XEP-0198 §2) and takes what comes of it before bind: a <resume/>, or
// an <enable/> that is too early.
func smFeature(n *negotiation) xmpp.StreamFeature {
	return authnFeature(xml.Name{Space: nsSM, Local: "sm"}, false, func(s *xmpp.Session) (xmpp.SessionState, io.ReadWriter, error) {
		if err := n.smBeforeBind(s); err != nil {
			// mellium goes on reading features after an optional one
			// failed, unless it returned a ReadWriter: the error
			// (errResumed included) must end negotiation.
			return 0, n.guard, err
		}
		return 0, nil, nil
	})
}

// resumeRequest is a <resume/>.
type resumeRequest struct {
	XMLName xml.Name
	PrevID  string `xml:"previd,attr"`
	H       string `xml:"h,attr"`
}

// smBeforeBind answers a stream management element sent before bind.
func (n *negotiation) smBeforeBind(xs *xmpp.Session) error {
	r := xs.TokenReader()
	defer r.Close()
	d := xml.NewTokenDecoder(r)
	var req resumeRequest
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		if start, ok := tok.(xml.StartElement); ok {
			if err := d.DecodeElement(&req, &start); err != nil {
				return err
			}
			break
		}
	}
	switch req.XMLName.Local {
	case "enable":
		// Only a bound resource has a session to manage (XEP-0198 §3).
		_, err := n.guard.Write(failedElement("unexpected-request"))
		return err
	case "resume":
		return n.resume(req)
	}
	return streamError(stream.UnsupportedStanzaType, "")
}

// resume attaches this connection to the session previd names, if it is
// the authenticated user's and still waits (XEP-0198 §5).
func (n *negotiation) resume(req resumeRequest) error {
	failed, err := n.tryResume(req)
	if failed != nil {
		_, err = n.guard.Write(failed)
	}
	return err
}

// tryResume is resume's work: errResumed when the session was taken
// over, the <failed/> to answer when there is no such session, or an
// error that ends the stream. SASL2 calls it for a <resume/> inline.
func (n *negotiation) tryResume(req resumeRequest) (failed []byte, err error) {
	h, err := strconv.ParseUint(req.H, 10, 32)
	if err != nil {
		return nil, streamError(stream.BadFormat, "<resume/> needs h, a 32-bit count")
	}
	s := n.cfg.resumable.get(req.PrevID)
	self, _ := jid.New(n.user, n.host, "")
	if s != nil && !s.jid.Bare().Equal(self) {
		n.logger.Warn("resumption of another user's session refused", "user", self.String())
		s = nil
	}
	if s == nil || !s.takeOver() {
		n.logger.Info("resumption failed: no such session", "user", self.String())
		return failedElement("item-not-found"), nil
	}
	s.mu.Lock()
	err = s.ackLocked(uint32(h))
	if err != nil {
		s.closing = true
	}
	s.mu.Unlock()
	if err != nil {
		s.logger.Info("resumption acknowledged more than was sent", "h", h)
		s.endDetached()
		return nil, err
	}
	n.sess, n.resumed, n.previd = s, true, req.PrevID
	s.cfg.Router.Resumed(n.ctx, s)
	return nil, errResumed
}

// resumeTable holds the sessions that enabled resumption, by id, until
// they end.
type resumeTable struct {
	mu sync.Mutex
	m  map[string]*Session
}

func newResumeTable() *resumeTable { return &resumeTable{m: make(map[string]*Session)} }

func (t *resumeTable) add(id string, s *Session) {
	t.mu.Lock()
	t.m[id] = s
	t.mu.Unlock()
}

func (t *resumeTable) get(id string) *Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[id]
}

func (t *resumeTable) remove(id string) {
	t.mu.Lock()
	delete(t.m, id)
	t.mu.Unlock()
}
