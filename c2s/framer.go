package c2s

import (
	"bytes"
	"encoding/xml"
	"unicode/utf8"

	"mellium.im/xmpp/stream"

	"ottr.im/ottr/element"
)

// framer cuts a client's byte stream, once negotiation is over, into
// complete top-level elements and checks each for well-formedness on the
// way: tag names match, attributes are quoted and unique, references are
// the five predefined entities or valid character references, the text is
// UTF-8 of XML characters, prefixes are declared, and the limits hold. It
// replaces a general XML parser on the hot path: a stanza is read once,
// byte by byte, and kept as bytes (see element.FromBytes).
//
// Depth 0 is the stream level, where only whitespace may sit between
// elements. On a TCP stream the stream element itself has been consumed
// by negotiation, so its end tag is seen at depth 0 too.
type framer struct {
	lim GuardLimits

	buf      []byte // the element being read, from its '<'
	state    fstate
	depth    int // open elements inside the current top-level one
	space    int // whitespace bytes since the last element, at depth 0
	quote    byte
	attrs    int
	ref      [12]byte
	refLen   int
	refFrom  fstate
	cdata    int  // progress through "[CDATA[" or "]]>"
	needsCtx bool // the element uses a prefix it does not declare
	end      bool // the stream's end tag was read

	// Offsets into buf.
	tagStart  int
	nameStart int
	nameEnd   int
	attrStart int
	open      []span   // names of the open elements
	decls     []prefix // prefixes declared by the open elements
	tagAttrs  []span   // attribute names of the tag being read
}

type span struct{ start, end int }

type prefix struct {
	depth int
	name  span
}

type fstate uint8

const (
	fText      fstate = iota
	fLT               // after '<'
	fStartName        // in a start tag's name
	fInTag            // between attributes
	fAttrName
	fAttrEq  // after an attribute name, expecting '='
	fAttrQ   // after '=', expecting a quote
	fAttrVal // in a quoted value
	fAttrEnd // after a value: whitespace, '/' or '>'
	fEmpty   // after '/' in a start tag
	fEndName // in an end tag
	fEndTail // after an end tag's name
	fRef     // after '&'
	fBang    // after "<!"
	fCDATA
)

func notWellFormed(reason string) error {
	return &LimitError{Err: streamError(stream.NotWellFormed, ""), Reason: reason}
}

func isNameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':' || c >= 0x80
}

func isNameChar(c byte) bool {
	return isNameStart(c) || c >= '0' && c <= '9' || c == '-' || c == '.'
}

// feed scans p. It returns how many bytes it consumed and whether an
// element is complete (then take returns it); it stops right after a
// complete element so that the caller handles one at a time.
func (f *framer) feed(p []byte) (int, bool, error) {
	for i, c := range p {
		if f.state == fText && f.depth == 0 && len(f.buf) == 0 {
			// Between elements: whitespace, or the start of the next one.
			switch {
			case c == '<':
				if f.buf == nil {
					// Sized for what has arrived: most stanzas fit at once.
					f.buf = make([]byte, 0, max(256, min(len(p)-i, f.lim.MaxElement)))
				}
				f.buf = append(f.buf, c)
				f.state, f.space = fLT, 0
				f.tagStart = 0
			case isSpace(c):
				if f.space++; f.space > f.lim.MaxElement {
					return i, false, f.fail(stream.PolicyViolation, "whitespace flood")
				}
			default:
				return i, false, &LimitError{Err: streamError(stream.BadFormat, "text outside a stanza"), Reason: "text at stream level"}
			}
			continue
		}
		f.buf = append(f.buf, c)
		if len(f.buf) > f.lim.MaxElement {
			return i, false, f.fail(stream.PolicyViolation, "element too large")
		}
		done, err := f.step(c)
		if err != nil {
			return i, false, err
		}
		if done && !validChars(f.buf) {
			return i, false, notWellFormed("invalid UTF-8 or a character XML does not allow")
		}
		if done || f.end {
			return i + 1, done, nil
		}
	}
	return len(p), false, nil
}

func (f *framer) fail(cond stream.Error, reason string) error {
	return &LimitError{Err: streamError(cond, reason), Reason: reason}
}

// take returns the complete element, which the caller keeps (the framer
// starts a new buffer for the next one, so an idle session holds none),
// and resets for the next.
func (f *framer) take() (el []byte, needsCtx bool) {
	el, needsCtx = f.buf, f.needsCtx
	f.buf, f.needsCtx = nil, false
	f.open, f.decls = f.open[:0], f.decls[:0]
	return el, needsCtx
}

// step advances over c, already appended to buf at len(buf)-1. It
// reports whether the top-level element is complete.
func (f *framer) step(c byte) (bool, error) {
	pos := len(f.buf) - 1
	switch f.state {
	case fText:
		switch c {
		case '<':
			f.state, f.tagStart = fLT, pos
		case '&':
			f.state, f.refLen, f.refFrom = fRef, 0, fText
		case '>':
			// Allowed by XML except as part of "]]>".
			if pos >= 2 && f.buf[pos-1] == ']' && f.buf[pos-2] == ']' {
				return false, notWellFormed("]]> in text")
			}
		}
	case fLT:
		switch {
		case c == '/':
			f.state, f.nameStart = fEndName, pos+1
		case c == '!':
			if f.depth == 0 {
				return false, f.fail(stream.RestrictedXML, "comments, DTDs and declarations are not allowed")
			}
			f.state, f.cdata = fBang, 0
		case c == '?':
			return false, f.fail(stream.RestrictedXML, "processing instructions are not allowed")
		case isNameStart(c):
			if f.depth > f.lim.MaxDepth {
				return false, f.fail(stream.PolicyViolation, "elements nested too deep")
			}
			f.state, f.nameStart, f.attrs = fStartName, pos, 0
			f.tagAttrs = f.tagAttrs[:0]
		default:
			return false, notWellFormed("bad character after <")
		}
	case fStartName:
		switch {
		case isNameChar(c):
		case isSpace(c):
			f.nameEnd, f.state = pos, fInTag
		case c == '/':
			f.nameEnd, f.state = pos, fEmpty
		case c == '>':
			f.nameEnd = pos
			return f.openTag(false)
		default:
			return false, notWellFormed("bad character in an element name")
		}
	case fInTag, fAttrEnd:
		switch {
		case isSpace(c):
			f.state = fInTag
		case c == '/':
			f.state = fEmpty
		case c == '>':
			return f.openTag(false)
		case isNameStart(c) && f.state == fInTag:
			f.state, f.attrStart = fAttrName, pos
		default:
			return false, notWellFormed("bad character in a start tag")
		}
	case fAttrName:
		switch {
		case isNameChar(c):
		case isSpace(c):
			f.endAttrName(pos)
			f.state = fAttrEq
		case c == '=':
			f.endAttrName(pos)
			f.state = fAttrQ
		default:
			return false, notWellFormed("bad character in an attribute name")
		}
		if f.attrs > f.lim.MaxAttributes {
			return false, f.fail(stream.PolicyViolation, "too many attributes")
		}
	case fAttrEq:
		switch {
		case isSpace(c):
		case c == '=':
			f.state = fAttrQ
		default:
			return false, notWellFormed("attribute without a value")
		}
	case fAttrQ:
		switch {
		case isSpace(c):
		case c == '"' || c == '\'':
			f.state, f.quote = fAttrVal, c
		default:
			return false, notWellFormed("unquoted attribute value")
		}
	case fAttrVal:
		switch c {
		case f.quote:
			f.state = fAttrEnd
		case '<':
			return false, notWellFormed("< in an attribute value")
		case '&':
			f.state, f.refLen, f.refFrom = fRef, 0, fAttrVal
		}
	case fEmpty:
		if c != '>' {
			return false, notWellFormed("/ not followed by >")
		}
		return f.openTag(true)
	case fEndName:
		switch {
		case isNameChar(c) && (pos > f.nameStart || isNameStart(c)):
		case pos > f.nameStart && isSpace(c):
			f.nameEnd, f.state = pos, fEndTail
		case pos > f.nameStart && c == '>':
			f.nameEnd = pos
			return f.closeTag()
		default:
			return false, notWellFormed("bad end tag")
		}
	case fEndTail:
		switch {
		case isSpace(c):
		case c == '>':
			return f.closeTag()
		default:
			return false, notWellFormed("bad end tag")
		}
	case fRef:
		if c == ';' {
			if !validRef(f.ref[:f.refLen]) {
				return false, notWellFormed("undefined entity or bad character reference")
			}
			f.state = f.refFrom
			return false, nil
		}
		if f.refLen == len(f.ref) {
			return false, notWellFormed("reference too long")
		}
		f.ref[f.refLen] = c
		f.refLen++
	case fBang:
		const open = "[CDATA["
		if c != open[f.cdata] {
			return false, f.fail(stream.RestrictedXML, "comments, DTDs and declarations are not allowed")
		}
		if f.cdata++; f.cdata == len(open) {
			f.state, f.cdata = fCDATA, 0
		}
	case fCDATA:
		switch {
		case c == ']':
			if f.cdata < 2 {
				f.cdata++
			}
		case c == '>' && f.cdata == 2:
			f.state, f.cdata = fText, 0
		default:
			f.cdata = 0
		}
	}
	return false, nil
}

func (f *framer) endAttrName(pos int) {
	f.tagAttrs = append(f.tagAttrs, span{f.attrStart, pos})
	f.attrs++
}

// openTag finishes a start tag: attribute names unique, namespace
// declarations recorded, prefixes checked. For an empty element (/>) the
// element closes at once.
func (f *framer) openTag(empty bool) (bool, error) {
	f.quote = 0
	f.state = fText
	name := span{f.nameStart, f.nameEnd}
	if err := f.checkQName(name); err != nil {
		return false, err
	}
	if f.depth == 0 && isStreamName(f.buf[name.start:name.end]) {
		// What closes the stream at this level cannot open an element:
		// a restart has no place after bind, and a scanner of the same
		// bytes (web's splitter) would read a stream header.
		return false, f.fail(stream.BadFormat, "a stream header inside the stream")
	}
	// Unique attribute names, and namespace declarations.
	for i, a := range f.tagAttrs {
		an := f.buf[a.start:a.end]
		if err := f.checkQName(a); err != nil {
			return false, err
		}
		for _, b := range f.tagAttrs[:i] {
			if bytes.Equal(an, f.buf[b.start:b.end]) {
				return false, notWellFormed("attribute given twice")
			}
		}
		if bytes.HasPrefix(an, []byte("xmlns:")) {
			f.decls = append(f.decls, prefix{depth: f.depth, name: span{a.start + 6, a.end}})
		}
	}
	// Prefixes must be declared inside the top-level element; otherwise
	// the element needs the stream's declarations to be understood.
	f.checkPrefix(name)
	for _, a := range f.tagAttrs {
		an := f.buf[a.start:a.end]
		if !bytes.HasPrefix(an, []byte("xmlns")) {
			f.checkPrefix(a)
		}
	}
	if empty {
		f.popDecls(f.depth)
		return f.depth == 0, nil
	}
	f.open = append(f.open, name)
	f.depth++
	return false, nil
}

// closeTag matches an end tag with the open element.
func (f *framer) closeTag() (bool, error) {
	f.state = fText
	name := f.buf[f.nameStart:f.nameEnd]
	if len(f.open) == 0 {
		// The end of the stream itself.
		if isStreamName(name) {
			f.end = true
			f.buf = f.buf[:0]
			return false, nil
		}
		return false, notWellFormed("end tag without a start")
	}
	top := f.open[len(f.open)-1]
	if !bytes.Equal(name, f.buf[top.start:top.end]) {
		return false, notWellFormed("end tag does not match")
	}
	f.open = f.open[:len(f.open)-1]
	f.depth--
	f.popDecls(f.depth)
	if f.depth == 0 {
		return true, nil
	}
	return false, nil
}

// isStreamName reports whether a top-level tag's name is the stream's
// own (stream:stream, any prefix's stream, or stream).
func isStreamName(name []byte) bool {
	return bytes.Equal(name, []byte("stream")) || bytes.HasSuffix(name, []byte(":stream"))
}

func (f *framer) popDecls(depth int) {
	n := len(f.decls)
	for n > 0 && f.decls[n-1].depth >= depth {
		n--
	}
	f.decls = f.decls[:n]
}

// checkQName refuses names with an empty prefix or local part, or more
// than one colon.
func (f *framer) checkQName(s span) error {
	n := f.buf[s.start:s.end]
	if i := bytes.IndexByte(n, ':'); i >= 0 {
		if i == 0 || i == len(n)-1 || bytes.IndexByte(n[i+1:], ':') >= 0 {
			return notWellFormed("bad qualified name")
		}
		if !isNameStart(n[i+1]) {
			return notWellFormed("bad qualified name")
		}
	}
	if !asciiName(n) && !xmlName(n) {
		return notWellFormed("a name with characters XML names may not hold")
	}
	return nil
}

// asciiName reports whether n is all ASCII (already checked byte by
// byte); other names are checked against encoding/xml's tables.
func asciiName(n []byte) bool {
	for _, c := range n {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// xmlName checks a name with non-ASCII characters the way encoding/xml
// does (XML 1.0's name character classes), so that nothing the framer
// passes on can break a recipient's parser. Such names are rare: the
// cost of a small parse is fine.
func xmlName(n []byte) bool {
	if !utf8.Valid(n) {
		return false
	}
	doc := make([]byte, 0, len(n)+4)
	doc = append(append(append(doc, '<'), n...), "/>"...)
	_, err := xml.NewDecoder(bytes.NewReader(doc)).Token()
	return err == nil
}

// checkPrefix marks the element as needing the stream's context when s
// uses a prefix no open element declares.
func (f *framer) checkPrefix(s span) {
	n := f.buf[s.start:s.end]
	i := bytes.IndexByte(n, ':')
	if i < 0 {
		return
	}
	p := n[:i]
	if bytes.Equal(p, []byte("xml")) {
		return
	}
	for _, d := range f.decls {
		if bytes.Equal(p, f.buf[d.name.start:d.name.end]) {
			return
		}
	}
	f.needsCtx = true
}

// validRef checks the name of an entity or character reference.
func validRef(r []byte) bool {
	if element.IsPredefinedEntity(string(r)) {
		return true
	}
	_, ok := element.CharRef(string(r))
	return ok
}

// validChars checks that el is UTF-8 of characters XML allows.
func validChars(el []byte) bool {
	for i := 0; i < len(el); {
		c := el[i]
		if c < 0x80 {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(el[i:])
		if r == utf8.RuneError && n <= 1 || !element.IsXMLChar(r) {
			return false
		}
		i += n
	}
	return true
}

// Frame cuts data, a client's bytes once negotiation is over (top-level
// elements, whitespace between them, perhaps the stream's end tag), into
// the elements the session's reader accepts, checked exactly as it checks
// them. It stops at the end tag or at the first error, and returns the
// elements read before it. Other scanners of the same bytes are tested
// against it: web's FuzzSplitter requires its splitter to cut the
// server's output where Frame cut the client's input. lim is used as the
// session uses it after bind (MaxPrebind plays no part): a zero limit
// refuses everything it bounds.
func Frame(data []byte, lim GuardLimits) ([][]byte, error) {
	f := &framer{lim: lim}
	var els [][]byte
	for len(data) > 0 && !f.end {
		n, done, err := f.feed(data)
		if err != nil {
			return els, err
		}
		data = data[n:]
		if done {
			el, _ := f.take()
			els = append(els, el)
		}
	}
	return els, nil
}
