package c2s

import "bufio"

// Framer is the session's framer for another stream of the same XML, such
// as a component's (XEP-0114): it cuts the bytes after the stream header
// into top-level elements and checks each exactly as a client session's
// reader does (see Frame), within its limits.
type Framer struct{ f framer }

// NewFramer returns a Framer with the limits of lim as a bound session
// applies them (MaxPrebind plays no part).
func NewFramer(lim GuardLimits) *Framer { return &Framer{f: framer{lim: lim}} }

// Next reads br up to the next complete top-level element and returns it
// as a copy the caller may keep, with needsCtx set when it uses a prefix
// declared outside it (on the stream header); el is nil when the stream's
// end tag was read. An error that breaks the limits or XML's rules is a
// *LimitError carrying the stream error to close with.
func (fr *Framer) Next(br *bufio.Reader) (el []byte, needsCtx bool, err error) {
	return readElement(br, &fr.f)
}

// readElement returns the next complete top-level element read from br
// through fr, as a copy the stanza may keep, or nil when the peer closed
// the stream.
func readElement(br *bufio.Reader, fr *framer) ([]byte, bool, error) {
	for {
		if _, err := br.Peek(1); err != nil {
			return nil, false, err
		}
		chunk, _ := br.Peek(br.Buffered())
		n, done, err := fr.feed(chunk)
		br.Discard(n)
		switch {
		case err != nil:
			return nil, false, err
		case done:
			el, needsCtx := fr.take()
			return el, needsCtx, nil
		case fr.end:
			return nil, false, nil
		}
	}
}
