package muc

import (
	"encoding/xml"
	"io"

	"mellium.im/xmpp/jid"

	"ottr.im/ottr/element"
)

// builder collects the tokens of one element tree.
type builder struct {
	toks  []xml.Token
	stack []xml.Name
}

// open starts an element; attrs are name, value pairs, those with an
// empty value left out.
func (b *builder) open(space, local string, attrs ...string) *builder {
	start := xml.StartElement{Name: xml.Name{Space: space, Local: local}}
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] != "" {
			start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: attrs[i]}, Value: attrs[i+1]})
		}
	}
	b.toks = append(b.toks, start)
	b.stack = append(b.stack, start.Name)
	return b
}

// text adds character data.
func (b *builder) text(s string) *builder {
	if s != "" {
		b.toks = append(b.toks, xml.CharData(s))
	}
	return b
}

// close ends the innermost open element.
func (b *builder) close() *builder {
	n := b.stack[len(b.stack)-1]
	b.stack = b.stack[:len(b.stack)-1]
	b.toks = append(b.toks, xml.EndElement{Name: n})
	return b
}

// leaf adds <local xmlns=space attrs>text</local>.
func (b *builder) leaf(space, local, text string, attrs ...string) *builder {
	return b.open(space, local, attrs...).text(text).close()
}

// reader returns the tokens as a token reader.
func (b *builder) reader() xml.TokenReader {
	return &tokReader{toks: b.toks}
}

type tokReader struct {
	toks []xml.Token
	i    int
}

func (r *tokReader) Token() (xml.Token, error) {
	if r.i >= len(r.toks) {
		return nil, io.EOF
	}
	r.i++
	return r.toks[r.i-1], nil
}

// newStanza returns a stanza carrying the builder's tokens (may be nil).
func newStanza(name, typ string, from, to jid.JID, id string, b *builder) *element.Stanza {
	var r xml.TokenReader
	if b != nil {
		r = b.reader()
	}
	st, err := element.New(name, typ, from, to, id, r)
	if err != nil {
		// Built tokens always encode.
		panic("muc: building a stanza: " + err.Error())
	}
	return st
}

// decodeChild decodes the first direct child of st with the given name
// into v and reports whether there was one.
func decodeChild(st *element.Stanza, space, local string, v any) (bool, error) {
	depth, start := 0, -1
	toks := st.Tokens()
	for i, tok := range toks {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && start < 0 && t.Name.Space == space && t.Name.Local == local {
				start = i
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 && start >= 0 {
				return true, xml.NewTokenDecoder(&tokReader{toks: toks[start : i+1]}).Decode(v)
			}
		}
	}
	return false, nil
}

// hasChild reports whether st has a direct child with that name.
func hasChild(st *element.Stanza, space, local string) bool {
	_, ok := st.Child(space, local)
	return ok
}

// isChild returns a matcher of direct children by namespace and local
// name (any local name when local is "").
func isChild(space, local string) func(xml.StartElement) bool {
	return func(s xml.StartElement) bool {
		return s.Name.Space == space && (local == "" || s.Name.Local == local)
	}
}

// readBuilder is a builder of the tokens r gives, for an element written
// with another package's writer.
func readBuilder(r xml.TokenReader) (*builder, error) {
	var b builder
	for {
		tok, err := r.Token()
		if tok != nil {
			// A reader may give its last token with io.EOF.
			b.toks = append(b.toks, xml.CopyToken(tok))
		}
		if err == io.EOF {
			return &b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
