package element

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// nsXML is the namespace of the xml: prefix.
const nsXML = "http://www.w3.org/XML/1998/namespace"

// ErrNeedsContext is returned by FromBytes for a stanza that uses a
// namespace prefix it does not declare itself (one declared on the
// stream): the caller parses it with the stream's declarations instead.
var ErrNeedsContext = errors.New("element: stanza uses a prefix declared outside it")

// ErrMalformed is returned by FromBytes for namespace errors that
// encoding/xml lets through, such as undeclaring a prefix (xmlns:p=”),
// which XML 1.0 namespaces do not allow.
var ErrMalformed = errors.New("element: not namespace-well-formed")

// FromBytes builds a Stanza from the bytes of one complete stanza element
// that the caller has checked for well-formedness (the c2s framer does).
// Only the start tag is parsed; the children are kept as bytes and
// forwarded as they are, until something asks for their tokens. The
// stanza keeps el's memory: el must not be reused.
func FromBytes(el []byte) (*Stanza, error) {
	if len(el) < 3 || el[0] != '<' {
		return nil, errors.New("element: not an element")
	}
	i := 1
	name, n := scanName(el[i:])
	if n == 0 {
		return nil, errors.New("element: no element name")
	}
	i += n
	if bytes.IndexByte(name, ':') >= 0 {
		return nil, ErrNeedsContext // a prefixed stanza element
	}
	st := &Stanza{Name: string(name), Size: len(el)}
	var addrErr error
	type rawAttr struct{ name, value []byte }
	var prefixed []rawAttr
	for {
		i += skipSpace(el[i:])
		if i >= len(el) {
			return nil, errors.New("element: unterminated start tag")
		}
		if el[i] == '/' || el[i] == '>' {
			break
		}
		an, n := scanName(el[i:])
		if n == 0 {
			return nil, fmt.Errorf("element: bad attribute at byte %d", i)
		}
		i += n
		i += skipSpace(el[i:])
		if i >= len(el) || el[i] != '=' {
			return nil, errors.New("element: attribute without value")
		}
		i++
		i += skipSpace(el[i:])
		if i >= len(el) || (el[i] != '"' && el[i] != '\'') {
			return nil, errors.New("element: unquoted attribute value")
		}
		q := el[i]
		end := bytes.IndexByte(el[i+1:], q)
		if end < 0 {
			return nil, errors.New("element: unterminated attribute value")
		}
		rawVal := el[i+1 : i+1+end]
		i += end + 2
		if i < len(el) && el[i] != '/' && el[i] != '>' && skipSpace(el[i:]) == 0 {
			return nil, ErrMalformed // attributes must be apart
		}
		if !validQName(an) {
			return nil, ErrMalformed
		}
		val, err := unescape(rawVal)
		if err != nil {
			return nil, err
		}
		switch {
		case string(an) == "xmlns":
			if val != NSClient {
				return nil, ErrNeedsContext // another default namespace: not ours to fast-path
			}
		case bytes.HasPrefix(an, []byte("xmlns:")):
			if val == "" {
				return nil, ErrMalformed
			}
			st.nsDecls = append(st.nsDecls, xml.Attr{Name: xml.Name{Space: "xmlns", Local: string(an[6:])}, Value: val})
		case bytes.IndexByte(an, ':') >= 0:
			prefixed = append(prefixed, rawAttr{an, []byte(val)})
		default:
			switch string(an) {
			case "to":
				st.To, err = parseAddr(val)
				if err != nil && addrErr == nil {
					addrErr = &AddrError{Attr: "to", Err: err}
				}
			case "from":
				st.From, err = parseAddr(val)
				if err != nil && addrErr == nil {
					addrErr = &AddrError{Attr: "from", Err: err}
				}
			case "id":
				st.ID = val
			case "type":
				st.Type = val
			default:
				st.Attr = append(st.Attr, xml.Attr{Name: xml.Name{Local: string(an)}, Value: val})
			}
		}
	}
	for _, a := range prefixed {
		p, local, _ := bytes.Cut(a.name, []byte(":"))
		space := ""
		if string(p) == "xml" {
			space = nsXML
		} else {
			for _, d := range st.nsDecls {
				if d.Name.Local == string(p) {
					space = d.Value
				}
			}
			if space == "" {
				return nil, ErrNeedsContext
			}
		}
		st.Attr = append(st.Attr, xml.Attr{Name: xml.Name{Space: space, Local: string(local)}, Value: string(a.value)})
	}
	if el[i] == '/' {
		return st, addrErr // empty element
	}
	i++ // '>'
	// The children run up to the end tag, which is the last '<' of el.
	endTag := bytes.LastIndexByte(el, '<')
	if endTag < i {
		return nil, errors.New("element: no end tag")
	}
	if endTag > i {
		st.raw = el[i:endTag]
	}
	return st, addrErr
}

// validQName reports whether n is a name with at most one colon, with a
// non-empty part on each side of it.
func validQName(n []byte) bool {
	i := bytes.IndexByte(n, ':')
	if i < 0 {
		return len(n) > 0
	}
	return i > 0 && i < len(n)-1 && bytes.IndexByte(n[i+1:], ':') < 0
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '.' || c == ':' || c >= 0x80
}

func scanName(b []byte) ([]byte, int) {
	n := 0
	for n < len(b) && isNameByte(b[n]) {
		n++
	}
	return b[:n], n
}

func skipSpace(b []byte) int {
	n := 0
	for n < len(b) && (b[n] == ' ' || b[n] == '\t' || b[n] == '\r' || b[n] == '\n') {
		n++
	}
	return n
}

// unescape decodes the entity and character references of an attribute
// value (already checked by the framer). Line ends are normalized as XML
// 1.0 §2.11 says and encoding/xml does ("\r\n" and a lone "\r" are read
// as "\n"; a reference &#xD; stays a CR); other whitespace is kept as it
// is, as encoding/xml keeps it, so that both paths agree.
func unescape(b []byte) (string, error) {
	if bytes.IndexByte(b, '&') < 0 && bytes.IndexByte(b, '\r') < 0 {
		return string(b), nil
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\r' {
			if i+1 < len(b) && b[i+1] == '\n' {
				continue // the \n that follows stands for both
			}
			out = append(out, '\n')
			continue
		}
		if c != '&' {
			out = append(out, c)
			continue
		}
		end := bytes.IndexByte(b[i:], ';')
		if end < 0 {
			return "", errors.New("element: unterminated reference")
		}
		ref := string(b[i+1 : i+end])
		i += end
		switch ref {
		case "lt":
			out = append(out, '<')
		case "gt":
			out = append(out, '>')
		case "amp":
			out = append(out, '&')
		case "apos":
			out = append(out, '\'')
		case "quot":
			out = append(out, '"')
		default:
			r, ok := CharRef(ref)
			if !ok {
				return "", fmt.Errorf("element: bad reference &%s;", ref)
			}
			out = utf8.AppendRune(out, r)
		}
	}
	return string(out), nil
}

// CharRef decodes the name of a character reference, "#123" or "#x7B",
// and reports whether it names a character XML allows.
func CharRef(ref string) (rune, bool) {
	if len(ref) < 2 || ref[0] != '#' {
		return 0, false
	}
	base, digits := 10, ref[1:]
	if digits[0] == 'x' {
		base, digits = 16, digits[1:]
	}
	if digits == "" || len(digits) > 8 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(digits) {
		var d int
		switch {
		case c >= '0' && c <= '9':
			d = int(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = int(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = int(c-'A') + 10
		default:
			return 0, false
		}
		r = r*rune(base) + rune(d)
		if r > utf8.MaxRune {
			return 0, false
		}
	}
	return r, isXMLChar(r)
}

// isXMLChar reports whether r may appear in an XML 1.0 document.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// IsXMLChar reports whether r may appear in an XML 1.0 document.
func IsXMLChar(r rune) bool { return isXMLChar(r) }

// IsPredefinedEntity reports whether name is one of XML's five entities.
func IsPredefinedEntity(name string) bool {
	switch name {
	case "lt", "gt", "amp", "apos", "quot":
		return true
	}
	return false
}

// Tokens returns the children as tokens, parsing the raw bytes a client
// sent on first use. The tokens must not be modified; use SetTokens.
func (s *Stanza) Tokens() []xml.Token {
	if s.inner == nil && s.raw != nil {
		toks, err := parseRaw(s.raw, s.nsDecls)
		if err != nil {
			// The framer validated the bytes: this does not happen. Keep
			// the stanza usable, without children.
			return nil
		}
		s.inner = toks
	}
	return s.inner
}

// SetTokens replaces the children.
func (s *Stanza) SetTokens(toks []xml.Token) {
	s.inner, s.raw, s.nsDecls = toks, nil, nil
}

// parseRaw tokenizes children bytes in the context of a jabber:client
// stanza carrying decls.
func parseRaw(raw []byte, decls []xml.Attr) ([]xml.Token, error) {
	var b bytes.Buffer
	b.WriteString(`<x xmlns="jabber:client"`)
	for _, d := range decls {
		b.WriteString(` xmlns:`)
		b.WriteString(d.Name.Local)
		b.WriteString(`="`)
		xml.EscapeText(&b, []byte(d.Value))
		b.WriteString(`"`)
	}
	b.WriteString(`>`)
	b.Write(raw)
	b.WriteString(`</x>`)
	d := xml.NewDecoder(&b)
	if _, err := d.Token(); err != nil {
		return nil, err
	}
	lim := Limits{MaxTokens: 1 << 20, MaxBytes: 1 << 30, MaxDepth: 1 << 10}
	st, err := Read(xml.StartElement{Name: xml.Name{Space: NSClient, Local: "x"}}, d, lim)
	if err != nil {
		var ae *AddrError
		if !errors.As(err, &ae) {
			return nil, err
		}
	}
	return st.inner, nil
}

// streamContext is what a client stream declares around its stanzas.
const streamContext = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

// ParseInContext parses one top-level element the slow way, with the
// declarations of a client stream header in scope, for what FromBytes
// leaves to its caller (ErrNeedsContext). It returns the element's name;
// the stanza is nil when the name is not a stanza's.
func ParseInContext(el []byte, lim Limits) (xml.Name, *Stanza, error) {
	d := xml.NewDecoder(io.MultiReader(strings.NewReader(streamContext), bytes.NewReader(el)))
	if _, err := d.Token(); err != nil {
		return xml.Name{}, nil, err
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.Name{}, nil, err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		start = start.Copy()
		if !Is(start.Name) {
			return start.Name, nil, nil
		}
		st, err := Read(start, d, lim)
		return start.Name, st, err
	}
}
