package component

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"mellium.im/xmpp/stream"

	"ottr.im/ottr/element"
)

// Client is the component's side of a connection (XEP-0114), small
// enough for tests and simple bots: it opens the stream, shakes hands,
// and then sends and reads stanzas.
type Client struct {
	conn net.Conn
	dec  *xml.Decoder
	// ID is the stream id the server gave.
	ID string
}

// Dial connects to a server's component listener at addr as the
// component name with secret. A refusal is the server's stream error.
func Dial(ctx context.Context, addr, name, secret string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("component: dial %s: %w", addr, err)
	}
	c, err := Open(conn, name, secret)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// Open runs the handshake on conn as the component name with secret.
func Open(conn net.Conn, name, secret string) (*Client, error) {
	c := &Client{conn: conn, dec: xml.NewDecoder(conn)}
	if err := c.Send(`<stream:stream xmlns='` + NS + `' xmlns:stream='http://etherx.jabber.org/streams' to='` + escape(name) + `'>`); err != nil {
		return nil, err
	}
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, fmt.Errorf("component: reading the stream header: %w", err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			if start.Name != (xml.Name{Space: stream.NS, Local: "stream"}) {
				return nil, fmt.Errorf("component: the server sent %v, not a stream header", start.Name)
			}
			for _, a := range start.Attr {
				if a.Name.Local == "id" {
					c.ID = a.Value
				}
			}
			break
		}
	}
	if err := c.Send("<handshake>" + Handshake(c.ID, secret) + "</handshake>"); err != nil {
		return nil, err
	}
	start, err := c.next()
	if err != nil {
		return nil, err
	}
	if start.Name != (xml.Name{Space: NS, Local: "handshake"}) {
		return nil, fmt.Errorf("component: the server answered the handshake with %v", start.Name)
	}
	return c, c.dec.Skip()
}

// escape escapes s for an attribute value.
func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// next returns the next top-level start element; a stream error is
// returned as a stream.Error.
func (c *Client) next() (xml.StartElement, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name == (xml.Name{Space: stream.NS, Local: "error"}) {
				var se stream.Error
				if err := c.dec.DecodeElement(&se, &t); err != nil {
					return xml.StartElement{}, err
				}
				return xml.StartElement{}, se
			}
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, errors.New("component: the server closed the stream")
		}
	}
}

// Send writes raw XML to the server.
func (c *Client) Send(x string) error {
	if _, err := c.conn.Write([]byte(x)); err != nil {
		return fmt.Errorf("component: write: %w", err)
	}
	return nil
}

// Next reads the next stanza from the server, its namespace read as a
// client stanza's (see element.Stanza); a stream error is returned as a
// stream.Error.
func (c *Client) Next() (*element.Stanza, error) {
	start, err := c.next()
	if err != nil {
		return nil, err
	}
	r := nsMap{c.dec}
	start.Name.Space = element.NSClient
	return element.Read(start, r, element.DefaultLimits)
}

// SetDeadline bounds the reads and writes of the connection.
func (c *Client) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// Close closes the stream and the connection.
func (c *Client) Close() error {
	c.Send("</stream:stream>")
	return c.conn.Close()
}
