// Package xmpptest is a test client for ottr's own tests: a mellium client
// session with helpers to send raw XML and wait for what arrives, and a
// hand-driven client for the protocol errors a well-behaved library will
// not produce. It is imported only by tests.
package xmpptest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Timeout is how long a wait lasts before the test fails.
const Timeout = 5 * time.Second

// Received is one top-level element a client got.
type Received struct {
	Name  string
	From  string
	To    string
	Type  string
	ID    string
	Body  string
	Inner string // the children, serialized
}

// Client is a mellium client session whose Serve loop collects what
// arrives; iq requests are answered with an empty result.
type Client struct {
	t    testing.TB
	Sess *xmpp.Session
	JID  jid.JID

	in      chan Received
	done    chan error
	backlog []Received // what WaitFor passed over, oldest first
	once    sync.Once
}

// Login connects to addr over STARTTLS (tlsCfg) and logs in as
// user@domain with mech and secret, binding resource (empty: the server
// picks one).
func Login(t testing.TB, addr string, tlsCfg *tls.Config, user, domain, resource string, mech sasl.Mechanism, secret string) (*Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	origin, err := jid.New(user, domain, "")
	if err != nil {
		conn.Close()
		return nil, err
	}
	sess, err := xmpp.NewClientSession(ctx, origin, conn,
		xmpp.StartTLS(tlsCfg),
		xmpp.SASL("", secret, mech),
		BindResource(resource),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return NewClient(t, sess), nil
}

// NewClient starts collecting what sess receives; the session is closed
// when the test ends.
func NewClient(t testing.TB, sess *xmpp.Session) *Client {
	c := &Client{t: t, Sess: sess, JID: sess.LocalAddr(), in: make(chan Received, 4096), done: make(chan error, 1)}
	go func() {
		c.done <- sess.Serve(xmpp.HandlerFunc(c.handle))
	}()
	t.Cleanup(c.Close)
	return c
}

func (c *Client) handle(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	var el struct {
		From  string `xml:"from,attr"`
		To    string `xml:"to,attr"`
		Type  string `xml:"type,attr"`
		ID    string `xml:"id,attr"`
		Body  string `xml:"body"`
		Inner []byte `xml:",innerxml"`
	}
	// Re-encode, then decode from bytes: innerxml needs a byte decoder.
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if _, err := xmlstream.Copy(noNSDecl{enc}, xmlstream.MultiReader(xmlstream.Token(*start), r)); err != nil {
		return err
	}
	if err := enc.Flush(); err != nil {
		return err
	}
	if err := xml.Unmarshal(buf.Bytes(), &el); err != nil {
		return err
	}
	c.in <- Received{Name: start.Name.Local, From: el.From, To: el.To, Type: el.Type, ID: el.ID, Body: el.Body, Inner: string(el.Inner)}
	if start.Name.Local == "iq" && (el.Type == "get" || el.Type == "set") {
		var to jid.JID
		if el.From != "" {
			to, _ = jid.Parse(el.From)
		}
		_, err := xmlstream.Copy(r, stanza.IQ{ID: el.ID, To: to, Type: stanza.ResultIQ}.Wrap(nil))
		return err
	}
	return nil
}

// noNSDecl drops namespace declaration attributes, which the encoder
// writes again from the names.
type noNSDecl struct{ *xml.Encoder }

func (w noNSDecl) EncodeToken(t xml.Token) error {
	if se, ok := t.(xml.StartElement); ok {
		attrs := se.Attr[:0:0]
		for _, a := range se.Attr {
			if !(a.Name.Space == "" && a.Name.Local == "xmlns") && a.Name.Space != "xmlns" {
				attrs = append(attrs, a)
			}
		}
		se.Attr = attrs
		t = se
	}
	return w.Encoder.EncodeToken(t)
}

// Send writes raw XML (one or more stanzas) on the stream, flushed once.
// It may be called from any goroutine; failures are reported with
// t.Error.
func (c *Client) Send(x string) {
	c.t.Helper()
	if err := c.TrySend(x); err != nil {
		c.t.Errorf("send %.200s: %v", x, err)
	}
}

// TrySend is Send returning the error.
func (c *Client) TrySend(x string) error {
	w := c.Sess.TokenWriter()
	defer w.Close()
	if _, err := xmlstream.Copy(w, xml.NewDecoder(strings.NewReader(x))); err != nil && err != io.EOF {
		return err
	}
	return w.Flush()
}

// Next returns the next element (the oldest put aside by WaitFor first).
func (c *Client) Next() Received {
	c.t.Helper()
	if len(c.backlog) > 0 {
		r := c.backlog[0]
		c.backlog = c.backlog[1:]
		return r
	}
	return c.receive()
}

func (c *Client) receive() Received {
	c.t.Helper()
	select {
	case r := <-c.in:
		return r
	case err := <-c.done:
		c.done <- err
		c.t.Fatalf("%s: stream ended while waiting: %v", c.JID, err)
	case <-time.After(Timeout):
		c.t.Fatalf("%s: nothing received in %v", c.JID, Timeout)
	}
	return Received{}
}

// WaitFor returns the first element, old or new, that match accepts; the
// others are kept, in order, for later waits.
func (c *Client) WaitFor(match func(Received) bool) Received {
	c.t.Helper()
	for i, r := range c.backlog {
		if match(r) {
			c.backlog = append(c.backlog[:i:i], c.backlog[i+1:]...)
			return r
		}
	}
	for {
		r := c.receive()
		if match(r) {
			return r
		}
		c.backlog = append(c.backlog, r)
	}
}

// NextNamed waits for an element with the given name and type ("*": any).
func (c *Client) NextNamed(name, typ string) Received {
	c.t.Helper()
	return c.WaitFor(func(r Received) bool { return r.Name == name && (typ == "*" || r.Type == typ) })
}

// NoneWithin fails the test if an element that match accepts arrives
// within d (or is already waiting).
func (c *Client) NoneWithin(d time.Duration, match func(Received) bool) {
	c.t.Helper()
	for _, r := range c.backlog {
		if match(r) {
			c.t.Fatalf("%s: unexpected %+v", c.JID, r)
		}
	}
	deadline := time.After(d)
	for {
		select {
		case r := <-c.in:
			if match(r) {
				c.t.Fatalf("%s: unexpected %+v", c.JID, r)
			}
			c.backlog = append(c.backlog, r)
		case <-deadline:
			return
		}
	}
}

// Quiet fails the test if anything at all arrives within d.
func (c *Client) Quiet(d time.Duration) {
	c.t.Helper()
	c.NoneWithin(d, func(Received) bool { return true })
}

// Ended waits for the stream to end and returns Serve's error.
func (c *Client) Ended() error {
	c.t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-time.After(Timeout):
		c.t.Fatalf("%s: stream did not end", c.JID)
	}
	return nil
}

// Close ends the stream and the connection.
func (c *Client) Close() {
	c.once.Do(func() {
		c.Sess.Close()
		c.Sess.Conn().Close()
	})
}

// IQ sends a request and returns the response with the same id.
func (c *Client) IQ(x, id string) Received {
	c.t.Helper()
	c.Send(x)
	return c.WaitFor(func(r Received) bool {
		return r.Name == "iq" && r.ID == id && (r.Type == "result" || r.Type == "error")
	})
}

// PresenceFrom waits for a presence of the given type from the given JID.
func (c *Client) PresenceFrom(from, typ string) Received {
	c.t.Helper()
	return c.WaitFor(func(r Received) bool { return r.Name == "presence" && r.From == from && r.Type == typ })
}

// RosterItem is a roster item as a client sees it.
type RosterItem struct {
	JID          string   `xml:"jid,attr"`
	Name         string   `xml:"name,attr"`
	Subscription string   `xml:"subscription,attr"`
	Ask          string   `xml:"ask,attr"`
	Approved     string   `xml:"approved,attr"`
	Groups       []string `xml:"group"`
}

// RosterQuery is a roster <query/>.
type RosterQuery struct {
	Ver   *string      `xml:"ver,attr"`
	Items []RosterItem `xml:"item"`
}

func (c *Client) parseQuery(inner string) RosterQuery {
	c.t.Helper()
	var q RosterQuery
	if strings.TrimSpace(inner) == "" {
		return q
	}
	if err := xml.Unmarshal([]byte(inner), &q); err != nil {
		c.t.Fatalf("roster query %q: %v", inner, err)
	}
	return q
}

var ids struct {
	sync.Mutex
	n int
}

func nextID(prefix string) string {
	ids.Lock()
	defer ids.Unlock()
	ids.n++
	return fmt.Sprintf("%s%d", prefix, ids.n)
}

// Roster requests the roster, with a version when ver is not empty (which
// also makes the resource interested in pushes), and returns it.
func (c *Client) Roster(ver string) RosterQuery {
	c.t.Helper()
	id := nextID("roster")
	verAttr := ""
	if ver != "" {
		verAttr = fmt.Sprintf(" ver='%s'", ver)
	}
	r := c.IQ(fmt.Sprintf(`<iq type='get' id='%s'><query xmlns='jabber:iq:roster'%s/></iq>`, id, verAttr), id)
	if r.Type != "result" {
		c.t.Fatalf("roster get: %+v", r)
	}
	return c.parseQuery(r.Inner)
}

// RosterPush waits for a roster push (already answered) and returns its
// item.
func (c *Client) RosterPush() RosterItem {
	c.t.Helper()
	r := c.WaitFor(func(r Received) bool {
		return r.Name == "iq" && r.Type == "set" && strings.Contains(r.Inner, "jabber:iq:roster")
	})
	q := c.parseQuery(r.Inner)
	if len(q.Items) != 1 {
		c.t.Fatalf("push with %d items: %s", len(q.Items), r.Inner)
	}
	if r.From != "" && r.From != c.JID.Bare().String() {
		c.t.Fatalf("push from %q", r.From)
	}
	return q.Items[0]
}

// Online requests the roster and sends initial presence, waiting for its
// own presence to come back.
func (c *Client) Online() *Client {
	c.t.Helper()
	c.Roster("")
	c.Send(`<presence/>`)
	c.PresenceFrom(c.JID.String(), "")
	return c
}

// SubscribeBoth runs the whole RFC 6121 handshake between a and b (both
// online, rosters requested), leaving them subscribed to each other.
func SubscribeBoth(t testing.TB, a, b *Client) {
	t.Helper()
	ab, bb := a.JID.Bare().String(), b.JID.Bare().String()
	a.Send(fmt.Sprintf(`<presence to='%s' type='subscribe'/>`, bb))
	if it := a.RosterPush(); it.JID != bb || it.Subscription != "none" || it.Ask != "subscribe" {
		t.Fatalf("a's push after subscribe: %+v", it)
	}
	if p := b.PresenceFrom(ab, "subscribe"); p.To != bb {
		t.Fatalf("subscribe to %q", p.To)
	}
	b.Send(fmt.Sprintf(`<presence to='%s' type='subscribed'/>`, ab))
	if it := b.RosterPush(); it.JID != ab || it.Subscription != "from" {
		t.Fatalf("b's push after approving: %+v", it)
	}
	a.PresenceFrom(bb, "subscribed")
	if it := a.RosterPush(); it.Subscription != "to" || it.Ask != "" {
		t.Fatalf("a's push after approval: %+v", it)
	}
	a.PresenceFrom(b.JID.String(), "")
	b.Send(fmt.Sprintf(`<presence to='%s' type='subscribe'/>`, ab))
	if it := b.RosterPush(); it.Subscription != "from" || it.Ask != "subscribe" {
		t.Fatalf("b's push after subscribe: %+v", it)
	}
	a.PresenceFrom(bb, "subscribe")
	a.Send(fmt.Sprintf(`<presence to='%s' type='subscribed'/>`, bb))
	if it := a.RosterPush(); it.Subscription != "both" {
		t.Fatalf("a's push: %+v", it)
	}
	if it := b.RosterPush(); it.Subscription != "both" {
		t.Fatalf("b's push: %+v", it)
	}
	b.PresenceFrom(a.JID.String(), "")
}
