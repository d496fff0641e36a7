package web

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
)

// Namespaces of the framings.
const (
	nsClient  = "jabber:client"
	nsStream  = "http://etherx.jabber.org/streams"
	nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	nsBOSH    = "http://jabber.org/protocol/httpbind"
	nsXBOSH   = "urn:xmpp:xbosh"
	nsXML     = "http://www.w3.org/XML/1998/namespace"
)

// event is what the splitter found in the server's output.
type event uint8

const (
	// evHeader is a stream header (the first, or one after a restart).
	evHeader event = iota
	// evElement is one complete top-level element, made standalone: it
	// declares the namespaces it inherited from the stream header.
	evElement
	// evSpace is whitespace between elements: a keepalive.
	evSpace
	// evEnd is the stream's closing tag.
	evEnd
)

// streamHeader holds the attributes of a stream header the server wrote.
type streamHeader struct {
	id, from, to, version, lang string
}

// emitFunc receives the splitter's events. data (the element of an
// evElement) is only valid during the call.
type emitFunc func(ev event, data []byte, h streamHeader) error

// Errors of the splitter: c2s wrote what it never should. Either ends the
// session.
var (
	// errOutputTooLarge is an element (or a run of text) of the server's
	// output larger than the splitter's limit: it is not buffered on.
	errOutputTooLarge = errors.New("web: an element of the server's output is over the size limit")
	// errMarkup is markup other than an element, a comment, a CDATA
	// section or a processing instruction (a DTD, say).
	errMarkup = errors.New("web: markup in the server's output that XMPP does not use")
)

// splitter cuts the byte stream c2s writes, an XMPP stream exactly as over
// TCP (an XML declaration, a stream header, top-level elements, whitespace
// keepalives, the closing tag), into events, one complete top-level
// element at a time: RFC 7395 wants one element per WebSocket message,
// BOSH one or more whole elements per response, whatever the chunks the
// encoder happened to flush. c2s's output is well-formed XML, so a small
// byte scanner (tags, quoted attribute values, comments, CDATA) is enough
// to find the element boundaries; nothing is decoded but the stream
// header.
//
// The boundaries must be exactly those of an XML parser: c2s forwards the
// children of a client's stanza as the client wrote them (once its framer
// checked them), so a section the splitter ended early (a CDATA section
// at "-->", say) would let a user's text reach a web client as stanzas of
// its own. A CDATA section ends only at "]]>", a comment only at "-->"
// (FuzzSplitter compares the splitter with encoding/xml).
type splitter struct {
	buf   []byte // bytes not yet handed on: the element being read
	max   int    // the most bytes buf may hold
	pos   int    // scanned so far
	state splitState
	depth int  // open elements, the stream element included
	base  int  // depth of the current top-level element's parent
	elem  int  // buf index of the current top-level element's '<'
	tag   int  // buf index of the current tag's '<'
	end   bool // the current tag is an end tag
	quote byte
	bang  string // the opening being matched after "<!": "--" or "[CDATA["
	match int    // bytes of bang matched; in a section, its closing ']' or '-' seen in a row
	prev  [2]byte
	space bool // the last top-level text was whitespace, already reported

	// ns are the namespace declarations of the stream header, by prefix
	// ("" for the default namespace).
	ns map[string]string
}

type splitState uint8

const (
	stText    splitState = iota
	stLT                 // after '<'
	stTag                // in a start or end tag
	stAttr               // in a quoted attribute value
	stPI                 // in a processing instruction (the XML declaration)
	stBang               // after "<!": matching "--" or "[CDATA["
	stComment            // in a comment, until "-->"
	stCDATA              // in a CDATA section, until "]]>"
)

// outputLimit is the most bytes of one element of the server's output the
// splitter buffers, for a max_stanza_bytes of maxStanza: room for the
// largest stanza with what the server adds to it, and for the largest
// results the server builds itself (a full roster).
func outputLimit(maxStanza int) int { return 4*maxStanza + 64<<10 }

// newSplitter returns a splitter that buffers at most max bytes of an
// element not yet complete (beyond the chunk being fed).
func newSplitter(max int) *splitter {
	return &splitter{max: max, ns: map[string]string{"": nsClient, "stream": nsStream}}
}

// feed scans p and reports every event it completes. It fails, and must
// not be called again, when the output is not what c2s writes or an
// element outgrows the limit.
func (s *splitter) feed(p []byte, emit emitFunc) error {
	s.buf = append(s.buf, p...)
	consumed := 0 // buf before this is handed on
	for ; s.pos < len(s.buf); s.pos++ {
		c := s.buf[s.pos]
		switch s.state {
		case stText:
			switch {
			case c == '<':
				s.state, s.tag, s.end = stLT, s.pos, false
				s.space = false
			case s.depth == s.base:
				// Text between top-level elements: only whitespace comes
				// here, as a keepalive.
				if isSpace(c) && !s.space {
					s.space = true
					if err := emit(evSpace, nil, streamHeader{}); err != nil {
						return err
					}
				}
				consumed = s.pos + 1
			}
		case stLT:
			switch c {
			case '/':
				s.state, s.end = stTag, true
			case '?':
				s.state = stPI
			case '!':
				s.state, s.bang, s.match = stBang, "", 0
			default:
				s.state = stTag
			}
		case stTag:
			switch {
			case c == '"' || c == '\'':
				s.state, s.quote = stAttr, c
			case c == '>':
				s.state = stText
				done, err := s.tagDone(s.prev[1] == '/', emit)
				if err != nil {
					return err
				}
				if done {
					consumed = s.pos + 1
				}
			}
		case stAttr:
			if c == s.quote {
				s.state = stTag
			}
		case stPI:
			if c == '>' && s.prev[1] == '?' {
				s.state = stText
				if s.depth == s.base {
					consumed = s.pos + 1 // the XML declaration: dropped
				}
			}
		case stBang:
			if s.bang == "" {
				switch c {
				case '-':
					s.bang = "--"
				case '[':
					s.bang = "[CDATA["
				default:
					return fmt.Errorf("%w: <!%c", errMarkup, c)
				}
			}
			if c != s.bang[s.match] {
				return fmt.Errorf("%w: <!%s%c", errMarkup, s.bang[:s.match], c)
			}
			if s.match++; s.match == len(s.bang) {
				s.state, s.match = stComment, 0
				if s.bang[0] == '[' {
					s.state = stCDATA
				}
			}
		case stComment, stCDATA:
			// The closing "-->" or "]]>": two of the same byte in a row,
			// after the opening, then '>'.
			closer := byte('-')
			if s.state == stCDATA {
				closer = ']'
			}
			switch {
			case c == closer:
				s.match = min(s.match+1, 2)
			case c == '>' && s.match == 2:
				if s.state == stComment && s.depth == s.base {
					consumed = s.pos + 1 // a comment between elements: dropped
				}
				s.state, s.match = stText, 0
			default:
				s.match = 0
			}
		}
		s.prev[0], s.prev[1] = s.prev[1], c
	}
	// Keep only what is not handed on yet.
	if consumed > 0 {
		n := copy(s.buf, s.buf[consumed:])
		s.buf = s.buf[:n]
		s.pos -= consumed
		s.elem -= consumed
		s.tag -= consumed
	}
	if len(s.buf) > s.max {
		return fmt.Errorf("%w (%d bytes buffered, limit %d)", errOutputTooLarge, len(s.buf), s.max)
	}
	if len(s.buf) == 0 && cap(s.buf) > 64<<10 {
		s.buf = nil // an idle session keeps no large buffer
	}
	return nil
}

// tagDone runs at the '>' of a tag, and reports whether everything up to
// it was handed on.
func (s *splitter) tagDone(empty bool, emit emitFunc) (bool, error) {
	t := s.buf[s.tag : s.pos+1]
	switch {
	case s.end:
		s.depth--
		switch {
		case s.depth < s.base:
			// The stream's closing tag.
			s.depth, s.base = 0, 0
			return true, emit(evEnd, nil, streamHeader{})
		case s.depth == s.base:
			return true, emit(evElement, s.standalone(s.buf[s.elem:s.pos+1]), streamHeader{})
		}
	case s.depth == s.base && isStreamTag(t) && !empty:
		// A stream header: the first one, or a restart.
		h := s.header(t)
		s.depth, s.base = 1, 1
		return true, emit(evHeader, nil, h)
	case s.depth == s.base && empty:
		return true, emit(evElement, s.standalone(t), streamHeader{})
	case empty:
	default:
		if s.depth == s.base {
			s.elem = s.tag
		}
		s.depth++
	}
	return false, nil
}

// isStreamTag reports whether a start tag is a stream header.
func isStreamTag(t []byte) bool {
	return bytes.HasPrefix(t, []byte("<stream:stream")) && len(t) > len("<stream:stream") &&
		(isSpace(t[len("<stream:stream")]) || t[len("<stream:stream")] == '>')
}

// header decodes a stream header and keeps its namespace declarations.
func (s *splitter) header(t []byte) streamHeader {
	var h streamHeader
	tok, err := xml.NewDecoder(bytes.NewReader(t)).RawToken()
	start, ok := tok.(xml.StartElement)
	if err != nil || !ok {
		return h
	}
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			s.ns[""] = a.Value
		case a.Name.Space == "xmlns":
			s.ns[a.Name.Local] = a.Value
		case a.Name.Space == "xml" && a.Name.Local == "lang":
			h.lang = a.Value
		case a.Name.Space != "":
		case a.Name.Local == "id":
			h.id = a.Value
		case a.Name.Local == "from":
			h.from = a.Value
		case a.Name.Local == "to":
			h.to = a.Value
		case a.Name.Local == "version":
			h.version = a.Value
		}
	}
	return h
}

// standalone returns el with the namespace declarations it inherits from
// the stream header added to its start tag (a default namespace, the
// stream prefix of <stream:features/>), so that it parses on its own, as
// RFC 7395 §3.3.3 and XEP-0206 want. el is returned unchanged when it
// declares what it uses, as every stanza does.
func (s *splitter) standalone(el []byte) []byte {
	name, attrs := rawTag(el)
	var add []string
	need := func(prefix string) {
		if prefix == "xml" || prefix == "xmlns" {
			return
		}
		for _, a := range attrs {
			if (prefix == "" && a == "xmlns") || (prefix != "" && a == "xmlns:"+prefix) {
				return
			}
		}
		ns, ok := s.ns[prefix]
		if !ok || ns == "" {
			return
		}
		attr := "xmlns"
		if prefix != "" {
			attr += ":" + prefix
		}
		for _, a := range add {
			if strings.HasPrefix(a, " "+attr+"=") {
				return
			}
		}
		add = append(add, " "+attr+"='"+escapeAttr(ns)+"'")
	}
	prefix, _, ok := strings.Cut(name, ":")
	if !ok {
		prefix = ""
	}
	need(prefix)
	for _, a := range attrs {
		if p, _, ok := strings.Cut(a, ":"); ok {
			need(p)
		}
	}
	if len(add) == 0 {
		return el
	}
	at := 1 + len(name)
	out := make([]byte, 0, len(el)+64)
	out = append(out, el[:at]...)
	for _, a := range add {
		out = append(out, a...)
	}
	return append(out, el[at:]...)
}

// rawTag returns the name and the attribute names, as written, of the
// start tag at the beginning of el, which is well-formed.
func rawTag(el []byte) (name string, attrs []string) {
	i := 1
	for i < len(el) && !isSpace(el[i]) && el[i] != '>' && el[i] != '/' {
		i++
	}
	name = string(el[1:i])
	for i < len(el) {
		for i < len(el) && isSpace(el[i]) {
			i++
		}
		if i >= len(el) || el[i] == '>' || el[i] == '/' {
			return name, attrs
		}
		j := i
		for j < len(el) && el[j] != '=' && !isSpace(el[j]) {
			j++
		}
		attrs = append(attrs, string(el[i:j]))
		for j < len(el) && el[j] != '"' && el[j] != '\'' {
			j++
		}
		if j >= len(el) {
			return name, attrs
		}
		q := el[j]
		j++
		for j < len(el) && el[j] != q {
			j++
		}
		i = j + 1
	}
	return name, attrs
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// escapeAttr escapes s for an attribute value in either quotes.
func escapeAttr(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
