package element

import (
	"bytes"
	"encoding/xml"
	"fmt"
)

// Marshal returns the stanza as XML, for storage.
func (s *Stanza) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if _, err := s.WriteXML(enc); err != nil {
		return nil, fmt.Errorf("element: encoding %s: %w", s.Name, err)
	}
	if err := enc.Flush(); err != nil {
		return nil, fmt.Errorf("element: encoding %s: %w", s.Name, err)
	}
	return buf.Bytes(), nil
}

// Unmarshal parses a stanza that Marshal produced.
func Unmarshal(b []byte) (*Stanza, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("element: decoding stored stanza: %w", err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			if !Is(start.Name) {
				return nil, fmt.Errorf("element: stored element %s is not a stanza", start.Name.Local)
			}
			lim := Limits{MaxTokens: 1 << 20, MaxBytes: 16 << 20, MaxDepth: 256}
			st, err := Read(start.Copy(), d, lim)
			if err != nil {
				return nil, err
			}
			return st, nil
		}
	}
}

// Append adds the tokens of r (a complete element) as the stanza's last
// child.
func (s *Stanza) Append(r xml.TokenReader) error {
	toks, err := collect(r)
	if err != nil {
		return err
	}
	cur := s.Tokens()
	s.SetTokens(append(cur[:len(cur):len(cur)], toks...))
	return nil
}
