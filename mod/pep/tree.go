package pep

import (
	"encoding/xml"
	"io"

	"mellium.im/xmlstream"
)

// elem is one complete element as tokens: its start, what it holds and
// its end.
type elem []xml.Token

func (e elem) start() xml.StartElement {
	if len(e) == 0 {
		return xml.StartElement{}
	}
	s, _ := e[0].(xml.StartElement)
	return s
}

// attr returns the value of the unnamespaced attribute local, or "".
func (e elem) attr(local string) string {
	for _, a := range e.start().Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// is reports whether e is {space}local.
func (e elem) is(space, local string) bool {
	n := e.start().Name
	return n.Space == space && n.Local == local
}

// children returns the direct child elements of e.
func (e elem) children() []elem {
	var out []elem
	depth, from := 0, 0
	for i := 1; i < len(e)-1; i++ {
		switch e[i].(type) {
		case xml.StartElement:
			if depth == 0 {
				from = i
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				out = append(out, e[from:i+1])
			}
		}
	}
	return out
}

// child returns the first direct child {space}local.
func (e elem) child(space, local string) (elem, bool) {
	for _, c := range e.children() {
		if c.is(space, local) {
			return c, true
		}
	}
	return nil, false
}

// text returns the character data directly inside e.
func (e elem) text() string {
	var b []byte
	depth := 0
	for _, tok := range e {
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 1 {
				b = append(b, t...)
			}
		}
	}
	return string(b)
}

// reader returns e's tokens as a token reader.
func (e elem) reader() xml.TokenReader {
	i := 0
	return xmlstream.ReaderFunc(func() (xml.Token, error) {
		if i >= len(e) {
			return nil, io.EOF
		}
		i++
		return e[i-1], nil
	})
}

// build returns the element <name attrs...>inner...</name>.
func build(name xml.Name, attrs []xml.Attr, inner ...xml.TokenReader) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.MultiReader(inner...), xml.StartElement{Name: name, Attr: attrs})
}

// attrs makes unnamespaced attributes of name, value pairs, leaving out
// those with an empty value.
func attrs(kv ...string) []xml.Attr {
	var out []xml.Attr
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			out = append(out, xml.Attr{Name: xml.Name{Local: kv[i]}, Value: kv[i+1]})
		}
	}
	return out
}
