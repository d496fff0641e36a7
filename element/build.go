package element

import (
	"bytes"
	"encoding/xml"

	"mellium.im/xmlstream"
)

// Builders of the small payloads that iq handlers answer with.

// Empty returns a token reader for <local xmlns=space/>.
func Empty(space, local string) xml.TokenReader {
	return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: space, Local: local}})
}

// Text returns a token reader for <local>text</local>.
func Text(local, text string) xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Local: local}})
}

// Stored returns a stored XML document (one element, as written by
// EncodeTokens) as tokens.
func Stored(doc []byte) xml.TokenReader {
	return xml.NewDecoder(bytes.NewReader(doc))
}

// EncodeTokens serializes tokens (one element) for storage.
func EncodeTokens(toks []xml.Token) ([]byte, error) {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	for _, tok := range toks {
		if err := enc.EncodeToken(tok); err != nil {
			return nil, err
		}
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// PayloadTokens returns the tokens of the stanza's first child element,
// nil when it has none.
func (s *Stanza) PayloadTokens() []xml.Token {
	depth := 0
	inner := s.Tokens()
	for i, tok := range inner {
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				for j := 0; j <= i; j++ {
					if _, ok := inner[j].(xml.StartElement); ok {
						return inner[j : i+1]
					}
				}
			}
		}
	}
	return nil
}

// DecodePayload decodes the stanza's first child element into v, as
// encoding/xml's Decode does.
func (s *Stanza) DecodePayload(v any) error {
	return xml.NewTokenDecoder(xmlstream.ReaderFunc(sliceReader(s.PayloadTokens()))).Decode(v)
}

// IsSubscription reports whether s is presence that manages a
// subscription (RFC 6121 §3): subscribe, subscribed, unsubscribe or
// unsubscribed.
func (s *Stanza) IsSubscription() bool {
	if s.Name != "presence" {
		return false
	}
	switch s.Type {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		return true
	}
	return false
}

// RemoveChildren removes the direct children whose start element match
// accepts, with all they hold, and reports whether it removed any. The
// stanza's children are rebuilt as tokens only when one goes.
func (s *Stanza) RemoveChildren(match func(xml.StartElement) bool) bool {
	toks := s.Tokens()
	var out []xml.Token
	depth, skipping, removed := 0, false, false
	for i, tok := range toks {
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && match(t) {
				if !removed {
					out = append(make([]xml.Token, 0, len(toks)), toks[:i]...)
					removed = true
				}
				skipping = true
			}
			depth++
		case xml.EndElement:
			depth--
			if skipping && depth == 0 {
				skipping = false
				continue
			}
		}
		if removed && !skipping {
			out = append(out, tok)
		}
	}
	if removed {
		s.SetTokens(out)
	}
	return removed
}
