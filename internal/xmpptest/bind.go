package xmpptest

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

const nsBind = "urn:ietf:params:xml:ns:xmpp-bind"

// BindResource is the client side of resource binding that asks for a
// given resource. (mellium v0.22.0's client bind writes an empty
// <resource/> whatever it is given.)
func BindResource(resource string) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		List: func(context.Context, xmlstream.TokenWriter, xml.StartElement) (bool, error) {
			return true, nil
		},
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, interface{}, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, s *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
			w := s.TokenWriter()
			defer w.Close()
			r := s.TokenReader()
			defer r.Close()
			var inner xml.TokenReader
			if resource != "" {
				inner = xmlstream.Wrap(xmlstream.Token(xml.CharData(resource)), xml.StartElement{Name: xml.Name{Local: "resource"}})
			}
			req := xmlstream.Wrap(
				xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Space: nsBind, Local: "bind"}}),
				xml.StartElement{Name: xml.Name{Local: "iq"}, Attr: []xml.Attr{
					{Name: xml.Name{Local: "type"}, Value: "set"},
					{Name: xml.Name{Local: "id"}, Value: "bind1"},
				}},
			)
			if _, err := xmlstream.Copy(w, req); err != nil {
				return 0, nil, err
			}
			if err := w.Flush(); err != nil {
				return 0, nil, err
			}
			d := xml.NewTokenDecoder(r)
			var resp struct {
				Type  string `xml:"type,attr"`
				JID   string `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>jid"`
				Error struct {
					Type string `xml:"type,attr"`
					// The condition (and the text, by name).
					Children []struct {
						XMLName xml.Name
						Value   string `xml:",chardata"`
					} `xml:",any"`
				} `xml:"error"`
			}
			for {
				tok, err := d.Token()
				if err != nil {
					return 0, nil, err
				}
				if start, ok := tok.(xml.StartElement); ok {
					if err := d.DecodeElement(&resp, &start); err != nil {
						return 0, nil, err
					}
					break
				}
			}
			if resp.Type != "result" {
				var parts []string
				for _, c := range resp.Error.Children {
					if c.XMLName.Local == "text" {
						parts = append(parts, fmt.Sprintf("%q", c.Value))
					} else {
						parts = append(parts, c.XMLName.Local)
					}
				}
				return 0, nil, fmt.Errorf("bind refused: %s %s", resp.Error.Type, strings.Join(parts, " "))
			}
			j, err := jid.Parse(resp.JID)
			if err != nil {
				return 0, nil, fmt.Errorf("bind: bad jid %q: %w", resp.JID, err)
			}
			s.UpdateAddr(j)
			return xmpp.Ready, nil, nil
		},
	}
}
