// Package element owns the in-memory form of one routed XMPP stanza: it
// reads a stanza off a token stream (with size limits), keeps its parsed
// addressing next to its XML, and writes it back out. Transports produce
// Stanzas; the router and the IM features consume them.
package element

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// NSClient is the namespace of stanzas on a client stream.
const NSClient = stanza.NSClient

// Errors returned by Read.
var (
	// ErrTooLarge means the stanza exceeded the token limit.
	ErrTooLarge = errors.New("element: stanza too large")
	// ErrTooDeep means the stanza nested deeper than the depth limit.
	ErrTooDeep = errors.New("element: stanza nested too deep")
)

// Limits bound what Read accepts.
type Limits struct {
	// MaxTokens is the most tokens (start, end, text) one stanza may hold.
	MaxTokens int
	// MaxBytes is the most bytes of names, attribute values and text.
	MaxBytes int
	// MaxDepth is the deepest nesting below the stanza element.
	MaxDepth int
}

// DefaultLimits are generous for chat and tight enough to bound memory.
var DefaultLimits = Limits{MaxTokens: 1 << 16, MaxBytes: 256 << 10, MaxDepth: 32}

// Stanza is one message, presence or iq. The attributes to, from, id and
// type live in the fields, not in Start.Attr, so that stamping and
// rewriting never leaves a stale copy behind.
type Stanza struct {
	// Name is the element's local name: "message", "presence" or "iq".
	Name string
	// Attr holds the other attributes (xml:lang and extensions).
	Attr []xml.Attr
	// To and From are the parsed addresses; the zero JID means absent.
	To, From jid.JID
	// ID and Type are the id and type attributes.
	ID, Type string
	// Size is about how many bytes the stanza takes (names, attribute
	// values and text as read); 0 when it was built, not read.
	Size int

	// The children are held in one of two forms: raw, the bytes exactly as
	// a client sent them (validated, with the namespace declarations of
	// the stanza element in nsDecls), which are forwarded untouched; or
	// inner, tokens without namespace declaration attributes, built or
	// parsed from raw on first use (see Tokens).
	raw     []byte
	nsDecls []xml.Attr
	inner   []xml.Token
}

// Is reports whether name is a stanza name on a client stream.
func Is(name xml.Name) bool {
	if name.Space != NSClient && name.Space != "" {
		return false
	}
	switch name.Local {
	case "message", "presence", "iq":
		return true
	}
	return false
}

// AddrError is returned by Read when to or from is not a valid JID; the
// stanza is still returned so that the caller can answer jid-malformed.
type AddrError struct {
	Attr string
	Err  error
}

func (e *AddrError) Error() string { return fmt.Sprintf("element: bad %s address: %v", e.Attr, e.Err) }

// Unwrap returns the JID parsing error.
func (e *AddrError) Unwrap() error { return e.Err }

// Read builds a Stanza from start and the tokens up to its end element
// read from r, within limits. On ErrTooLarge or ErrTooDeep the rest of the
// element has not been consumed: the stream must be closed. On *AddrError
// the element was read completely.
func Read(start xml.StartElement, r xml.TokenReader, lim Limits) (*Stanza, error) {
	st := &Stanza{Name: start.Name.Local}
	var addrErr error
	size := 0
	for _, a := range start.Attr {
		size += len(a.Name.Local) + len(a.Value)
		if isNSDecl(a) {
			continue
		}
		if a.Name.Space != "" {
			st.Attr = append(st.Attr, a)
			continue
		}
		var err error
		switch a.Name.Local {
		case "to":
			st.To, err = parseAddr(a.Value)
			if err != nil && addrErr == nil {
				addrErr = &AddrError{Attr: "to", Err: err}
			}
		case "from":
			st.From, err = parseAddr(a.Value)
			if err != nil && addrErr == nil {
				addrErr = &AddrError{Attr: "from", Err: err}
			}
		case "id":
			st.ID = a.Value
		case "type":
			st.Type = a.Value
		default:
			st.Attr = append(st.Attr, a)
		}
	}
	depth := 0
	for {
		tok, err := r.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > lim.MaxDepth {
				return nil, ErrTooDeep
			}
			size += len(t.Name.Local) + len(t.Name.Space)
			if !localName(t.Name.Local) {
				return nil, fmt.Errorf("%w: element name %q", ErrMalformed, t.Name.Local)
			}
			attrs := make([]xml.Attr, 0, len(t.Attr))
			for _, a := range t.Attr {
				size += len(a.Name.Local) + len(a.Value)
				if !localName(a.Name.Local) {
					return nil, fmt.Errorf("%w: attribute name %q", ErrMalformed, a.Name.Local)
				}
				if !isNSDecl(a) {
					attrs = append(attrs, a)
				}
			}
			t.Attr = attrs
			st.inner = append(st.inner, t)
		case xml.EndElement:
			if depth == 0 {
				st.Size = size
				return st, addrErr
			}
			depth--
			st.inner = append(st.inner, t)
		case xml.CharData:
			size += len(t)
			st.inner = append(st.inner, t.Copy())
		default:
			// Comments, processing instructions and directives are dropped
			// here; the stream reader refuses them before they get here.
			continue
		}
		if len(st.inner) > lim.MaxTokens || size > lim.MaxBytes {
			return nil, ErrTooLarge
		}
	}
}

// localName reports whether local, a name as encoding/xml split it at
// its prefix, can be written back: encoding/xml checks the characters of
// the whole qualified name, so "p:0" reaches here as the local name "0",
// which no name may start with (XML Namespaces' NCName). The c2s framer
// refuses the same names on the fast path.
func localName(local string) bool {
	if local == "" {
		return false
	}
	c := local[0]
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isNSDecl(a xml.Attr) bool {
	return (a.Name.Space == "" && a.Name.Local == "xmlns") || a.Name.Space == "xmlns"
}

func parseAddr(s string) (jid.JID, error) {
	if s == "" {
		return jid.JID{}, nil
	}
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, err
	}
	// mellium accepts a few forms whose canonical string does not parse
	// back to the same JID (domainparts with extra dots, found by
	// FuzzJID): refuse them, they are no address anyone is reached at.
	if back, err := jid.Parse(j.String()); err != nil || !back.Equal(j) {
		return jid.JID{}, fmt.Errorf("element: %q is not a canonical JID", s)
	}
	return j, nil
}

// Start returns the stanza's start element with its current addressing.
func (s *Stanza) Start() xml.StartElement {
	attrs := make([]xml.Attr, 0, len(s.Attr)+4)
	if !s.From.Equal(jid.JID{}) {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "from"}, Value: s.From.String()})
	}
	if !s.To.Equal(jid.JID{}) {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "to"}, Value: s.To.String()})
	}
	if s.ID != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "id"}, Value: s.ID})
	}
	if s.Type != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "type"}, Value: s.Type})
	}
	attrs = append(attrs, s.Attr...)
	return xml.StartElement{Name: xml.Name{Space: NSClient, Local: s.Name}, Attr: attrs}
}

// TokenReader returns the whole stanza as tokens. The stanza must not be
// changed while the reader is in use.
func (s *Stanza) TokenReader() xml.TokenReader {
	return xmlstream.Wrap(xmlstream.ReaderFunc(sliceReader(s.Tokens())), s.Start())
}

func sliceReader(toks []xml.Token) func() (xml.Token, error) {
	i := 0
	return func() (xml.Token, error) {
		if i >= len(toks) {
			return nil, io.EOF
		}
		i++
		return toks[i-1], nil
	}
}

// WriteXML writes the stanza to w.
func (s *Stanza) WriteXML(w xmlstream.TokenWriter) (int, error) {
	return xmlstream.Copy(w, s.TokenReader())
}

// Clone returns a copy that can be re-addressed independently. The
// children are shared: they are never modified in place.
func (s *Stanza) Clone() *Stanza {
	c := *s
	c.Attr = append([]xml.Attr(nil), s.Attr...)
	return &c
}

// Child returns the first direct child element with the given namespace
// and local name (an empty local name matches any), and whether there was
// one.
func (s *Stanza) Child(space, local string) (xml.StartElement, bool) {
	depth := 0
	for _, tok := range s.Tokens() {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name.Space == space && (local == "" || t.Name.Local == local) {
				return t, true
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return xml.StartElement{}, false
}

// Payload returns the first direct child element of an iq, which names its
// request, and whether there was one.
func (s *Stanza) Payload() (xml.StartElement, bool) {
	depth := 0
	for _, tok := range s.Tokens() {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				return t, true
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return xml.StartElement{}, false
}

// ChildText returns the character data directly inside the first direct
// child with the given name, or "".
func (s *Stanza) ChildText(space, local string) string {
	depth := 0
	in := false
	var text []byte
	for _, tok := range s.Tokens() {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name.Space == space && t.Name.Local == local {
				in = true
			}
			depth++
		case xml.EndElement:
			depth--
			if in && depth == 0 {
				return string(text)
			}
		case xml.CharData:
			if in && depth == 1 {
				text = append(text, t...)
			}
		}
	}
	return ""
}

// IsIQRequest reports whether s is an iq of type get or set.
func (s *Stanza) IsIQRequest() bool {
	return s.Name == "iq" && (s.Type == "get" || s.Type == "set")
}

// Reply returns an iq result to s, from s.To (or from, when given) to
// s.From, carrying payload (may be nil).
func (s *Stanza) Reply(from jid.JID, payload xml.TokenReader) *Stanza {
	r := &Stanza{Name: "iq", Type: "result", ID: s.ID, To: s.From, From: from}
	if payload != nil {
		toks, err := collect(payload)
		if err == nil {
			r.inner = toks
		}
	}
	return r
}

// ErrorReply returns the error response to s: addressed back to its
// sender, from the given address, type error, with its original children
// (RFC 6120 §8.3.1) followed by the error element.
func (s *Stanza) ErrorReply(from jid.JID, e stanza.Error) *Stanza {
	r := &Stanza{Name: s.Name, Type: "error", ID: s.ID, To: s.From, From: from, Attr: s.Attr}
	r.inner = append([]xml.Token(nil), s.Tokens()...)
	if toks, err := collect(e.TokenReader()); err == nil {
		r.inner = append(r.inner, toks...)
	}
	return r
}

// New returns a stanza with the given name, type and addressing whose
// children are read from payload (may be nil).
func New(name, typ string, from, to jid.JID, id string, payload xml.TokenReader) (*Stanza, error) {
	s := &Stanza{Name: name, Type: typ, From: from, To: to, ID: id}
	if payload != nil {
		toks, err := collect(payload)
		if err != nil {
			return nil, err
		}
		s.inner = toks
	}
	return s, nil
}

func collect(r xml.TokenReader) ([]xml.Token, error) {
	var toks []xml.Token
	for {
		tok, err := r.Token()
		if start, ok := tok.(xml.StartElement); ok {
			attrs := make([]xml.Attr, 0, len(start.Attr))
			for _, a := range start.Attr {
				if !isNSDecl(a) {
					attrs = append(attrs, a)
				}
			}
			start.Attr = attrs
			tok = start
		}
		if tok != nil {
			toks = append(toks, xml.CopyToken(tok))
		}
		if err == io.EOF {
			return toks, nil
		}
		if err != nil {
			return toks, err
		}
	}
}
