package element

import (
	"encoding/xml"
	"strconv"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// AppendXML appends the stanza's XML to buf and returns it: the start tag
// with the current addressing, then the children (the client's bytes when
// they were never touched, else the tokens), then the end tag. The
// default namespace is jabber:client, as on the stream it is written to.
func (s *Stanza) AppendXML(buf []byte) []byte {
	buf = append(buf, '<')
	buf = append(buf, s.Name...)
	if !s.From.Equal(jid.JID{}) {
		buf = appendAttr(buf, "from", s.From.String())
	}
	if !s.To.Equal(jid.JID{}) {
		buf = appendAttr(buf, "to", s.To.String())
	}
	if s.ID != "" {
		buf = appendAttr(buf, "id", s.ID)
	}
	if s.Type != "" {
		buf = appendAttr(buf, "type", s.Type)
	}
	raw := s.raw != nil && s.inner == nil
	var decls []xml.Attr
	if raw {
		decls = s.nsDecls
		for _, d := range decls {
			buf = appendAttr(buf, "xmlns:"+d.Name.Local, d.Value)
		}
	}
	buf, _ = appendAttrs(buf, s.Attr, decls)
	if raw {
		buf = append(buf, '>')
		buf = append(buf, s.raw...)
	} else {
		if len(s.inner) == 0 {
			return append(buf, "/>"...)
		}
		buf = append(buf, '>')
		buf = appendTokens(buf, s.inner)
	}
	buf = append(buf, "</"...)
	buf = append(buf, s.Name...)
	return append(buf, '>')
}

// appendAttrs writes attributes; namespaced ones get a prefix from decls
// or a declaration of their own (ns1, ns2, ...). It returns the prefixes
// it declared.
func appendAttrs(buf []byte, attrs []xml.Attr, decls []xml.Attr) ([]byte, map[string]string) {
	var declared map[string]string
	for _, a := range attrs {
		switch a.Name.Space {
		case "":
			buf = appendAttr(buf, a.Name.Local, a.Value)
			continue
		case nsXML, "xml":
			buf = appendAttr(buf, "xml:"+a.Name.Local, a.Value)
			continue
		}
		prefix := ""
		for _, d := range decls {
			if d.Value == a.Name.Space {
				prefix = d.Name.Local
			}
		}
		if prefix == "" {
			prefix = declared[a.Name.Space]
		}
		if prefix == "" {
			if declared == nil {
				declared = make(map[string]string)
			}
			prefix = "ns" + strconv.Itoa(len(declared)+1)
			declared[a.Name.Space] = prefix
			buf = appendAttr(buf, "xmlns:"+prefix, a.Name.Space)
		}
		buf = appendAttr(buf, prefix+":"+a.Name.Local, a.Value)
	}
	return buf, declared
}

func appendAttr(buf []byte, name, value string) []byte {
	buf = append(buf, ' ')
	buf = append(buf, name...)
	buf = append(buf, `="`...)
	buf = appendEscaped(buf, value, true)
	return append(buf, '"')
}

// appendTokens serializes children tokens, declaring each element's
// namespace where it differs from its parent's.
func appendTokens(buf []byte, toks []xml.Token) []byte {
	// spaces[i] is the default namespace in force at depth i.
	spaces := make([]string, 1, 8)
	spaces[0] = NSClient
	var open []bool // whether each open element was written empty-closed
	for i, tok := range toks {
		switch t := tok.(type) {
		case xml.StartElement:
			parent := spaces[len(spaces)-1]
			buf = append(buf, '<')
			buf = append(buf, t.Name.Local...)
			space := t.Name.Space
			if space == "" {
				space = parent
			}
			if space != parent {
				buf = appendAttr(buf, "xmlns", space)
			}
			buf, _ = appendAttrs(buf, t.Attr, nil)
			spaces = append(spaces, space)
			// An element whose end follows at once is written empty.
			if i+1 < len(toks) {
				if _, ok := toks[i+1].(xml.EndElement); ok {
					buf = append(buf, "/>"...)
					open = append(open, true)
					continue
				}
			}
			buf = append(buf, '>')
			open = append(open, false)
		case xml.EndElement:
			spaces = spaces[:len(spaces)-1]
			empty := open[len(open)-1]
			open = open[:len(open)-1]
			if empty {
				continue
			}
			buf = append(buf, "</"...)
			buf = append(buf, t.Name.Local...)
			buf = append(buf, '>')
		case xml.CharData:
			buf = appendEscaped(buf, string(t), false)
		}
	}
	return buf
}

// appendEscaped escapes text for character data or (attr) a double-quoted
// attribute value; characters XML does not allow become U+FFFD.
func appendEscaped(buf []byte, s string, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); {
		r, width := utf8.DecodeRuneInString(s[i:])
		var esc string
		switch {
		case r == '&':
			esc = "&amp;"
		case r == '<':
			esc = "&lt;"
		case r == '>':
			esc = "&gt;"
		case attr && r == '"':
			esc = "&quot;"
		case attr && r == '\t':
			esc = "&#x9;"
		case attr && r == '\n':
			esc = "&#xA;"
		case r == '\r':
			esc = "&#xD;"
		case r == utf8.RuneError && width == 1, !isXMLChar(r):
			esc = "\uFFFD"
		default:
			i += width
			continue
		}
		buf = append(buf, s[last:i]...)
		buf = append(buf, esc...)
		i += width
		last = i
	}
	return append(buf, s[last:]...)
}
