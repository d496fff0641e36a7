package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// scanner reads a server's stream and finds the few markers the load
// generator needs (<proceed, <success, </jid>, <body>…) without parsing
// XML: a measuring instrument must cost little per operation, and every
// server under test writes these markers the same way. It is not a
// general XMPP reader: it trusts the server's well-formedness.
type scanner struct {
	r     io.Reader
	buf   []byte
	start int // first unconsumed byte
	end   int // end of the bytes read
}

// errStreamClosed is returned when the server closes the stream or the
// connection while a marker is awaited.
var errStreamClosed = errors.New("stream closed by server")

// streamError is a stream error the server sent.
type streamError struct{ Condition string }

func (e *streamError) Error() string { return "stream error: " + e.Condition }

var (
	mStreamError = []byte("stream:error")
	mStreamEnd   = []byte("</stream:stream>")
)

func newScanner(r io.Reader, size int) *scanner {
	return &scanner{r: r, buf: make([]byte, size)}
}

// reset drops what was buffered and reads from r from now on (after
// STARTTLS).
func (s *scanner) reset(r io.Reader) {
	s.r = r
	s.start, s.end = 0, 0
}

// fill reads more bytes, compacting or growing the buffer as needed. The
// buffer grows to at most 1 MiB: a larger element is an error here.
func (s *scanner) fill() error {
	if s.start > 0 && s.start == s.end {
		s.start, s.end = 0, 0
	}
	if s.end == len(s.buf) {
		if s.start > 0 {
			n := copy(s.buf, s.buf[s.start:s.end])
			s.start, s.end = 0, n
		} else {
			if len(s.buf) >= 1<<20 {
				return errors.New("scanner: element over 1 MiB")
			}
			nb := make([]byte, 2*len(s.buf))
			copy(nb, s.buf[:s.end])
			s.buf = nb
		}
	}
	n, err := s.r.Read(s.buf[s.end:])
	s.end += n
	if n > 0 {
		return nil
	}
	if err == io.EOF {
		return errStreamClosed
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// find returns the index in ms of the marker that appears first in the
// unconsumed bytes and the offset just past it, or -1.
func find(b []byte, ms [][]byte) (which, past int) {
	which, at := -1, len(b)
	for i, m := range ms {
		if j := bytes.Index(b[:min(len(b), at+len(m))], m); j >= 0 && j < at {
			which, at = i, j
			past = j + len(m)
		}
	}
	return which, past
}

// until consumes the stream through the first of ms to appear and
// returns its index. A stream error or the end of the stream before any
// of them is an error (a *streamError carries the condition).
func (s *scanner) until(ms ...[]byte) (int, error) {
	for {
		b := s.buf[s.start:s.end]
		if w, past := find(b, ms); w >= 0 {
			s.start += past
			return w, nil
		}
		if err := s.checkEnd(b); err != nil {
			return -1, err
		}
		// Keep a tail that may hold the start of a marker, and a stream
		// error whose condition has not arrived yet.
		keep := len(mStreamEnd) - 1
		for _, m := range ms {
			keep = max(keep, len(m)-1)
		}
		drop := max(0, len(b)-keep)
		if i := bytes.Index(b, mStreamError); i >= 0 {
			drop = min(drop, i)
		}
		s.start += drop
		if err := s.fill(); err != nil {
			return -1, err
		}
	}
}

// capture consumes the stream through end and returns the bytes before
// it, which stay valid until the next call.
func (s *scanner) capture(end []byte) ([]byte, error) {
	for {
		b := s.buf[s.start:s.end]
		if j := bytes.Index(b, end); j >= 0 {
			s.start += j + len(end)
			return b[:j], nil
		}
		if err := s.checkEnd(b); err != nil {
			return nil, err
		}
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
}

// checkEnd reports a stream error or the end of the stream found in b.
func (s *scanner) checkEnd(b []byte) error {
	if i := bytes.Index(b, mStreamError); i >= 0 {
		rest := b[i+len(mStreamError):]
		if cond := errorCondition(rest); cond != "" {
			return &streamError{Condition: cond}
		}
		if bytes.Contains(rest, []byte("error>")) || bytes.Contains(rest, mStreamEnd) {
			return &streamError{Condition: "unknown"}
		}
		return nil // wait for the condition
	}
	if bytes.Contains(b, mStreamEnd) {
		return errStreamClosed
	}
	return nil
}

// errorCondition returns the first child element's local name in b (after
// the stream:error or failure start tag), e.g. "not-authorized", or "".
func errorCondition(b []byte) string {
	gt := bytes.IndexByte(b, '>')
	if gt < 0 {
		return ""
	}
	b = b[gt+1:]
	for {
		lt := bytes.IndexByte(b, '<')
		if lt < 0 || lt+1 >= len(b) {
			return ""
		}
		b = b[lt+1:]
		if b[0] == '/' {
			if bytes.HasPrefix(b, []byte("/text>")) || bytes.HasSuffix(b[:max(0, bytes.IndexByte(b, '>'))], []byte(":text")) {
				continue // the end of <text>
			}
			return "" // the end of the parent: no condition
		}
		end := bytes.IndexAny(b, " />\t\r\n")
		if end < 0 {
			return ""
		}
		name := b[:end]
		if k := bytes.IndexByte(name, ':'); k >= 0 {
			name = name[k+1:]
		}
		if string(name) != "text" {
			return string(name)
		}
	}
}

// featuresEnd consumes the stream through the end of the stream
// features, closing or self-closing. It expects the "stream" prefix,
// which every server writes.
func (s *scanner) featuresEnd() error {
	_, err := s.until([]byte("</stream:features>"), []byte("<stream:features/>"))
	return err
}

// saslOutcome reads the answer to <auth/>: nil on <success>, an
// *authError with the condition on <failure>.
func (s *scanner) saslOutcome() error {
	w, err := s.until([]byte("<success"), []byte("<failure"))
	if err != nil {
		return err
	}
	if w == 0 {
		return nil
	}
	b, err := s.capture([]byte("failure>"))
	if err != nil {
		return err
	}
	cond := errorCondition(append([]byte{'>'}, b...))
	if cond == "" {
		cond = "unknown"
	}
	return &authError{Condition: cond}
}

// authError is a SASL failure.
type authError struct{ Condition string }

func (e *authError) Error() string { return "sasl failure: " + e.Condition }

// idMarkers are the two spellings of id='X' (single and double quotes).
func idMarkers(id string) [][]byte {
	return [][]byte{[]byte("id='" + id + "'"), []byte(`id="` + id + `"`)}
}

// iqResult consumes the stream through the reply to the iq with id and
// returns an error if it is of type error. It assumes the server writes
// the type attribute within the start tag, as every server does.
func (s *scanner) iqResult(id string) error {
	if _, err := s.until(idMarkers(id)...); err != nil {
		return err
	}
	// The start tag is the bytes around the marker: back to "<iq" (kept
	// in the buffer when it came in the same read, as it does from every
	// server: the tag is written at once) and forward to '>'.
	var tag []byte
	if i := bytes.LastIndex(s.buf[:s.start], []byte("<iq")); i >= 0 && bytes.IndexByte(s.buf[i:s.start], '>') < 0 {
		tag = append(tag, s.buf[i:s.start]...)
	}
	rest, err := s.capture([]byte(">"))
	if err != nil {
		return err
	}
	tag = append(tag, rest...)
	if bytes.Contains(tag, []byte("type='error'")) || bytes.Contains(tag, []byte(`type="error"`)) {
		b, err := s.capture([]byte("</iq>"))
		if err != nil {
			return err
		}
		if i := bytes.Index(b, []byte("<error")); i >= 0 {
			if cond := errorCondition(b[i:]); cond != "" {
				return fmt.Errorf("iq %s: %s", id, cond)
			}
		}
		return fmt.Errorf("iq %s: error", id)
	}
	return nil
}
