package server_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/internal/xmpptest"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata/golden")

// goldenTimeout bounds how long a transcript waits for the server's next
// element before it fails with what it has.
const goldenTimeout = 10 * time.Second

// TestGolden plays end-to-end exchanges over direct TLS with raw sockets
// and compares the transcript (client bytes "C", server bytes "S", each
// server element as the server wrote it, after normalization) with
// testdata/golden/<name>.xml. With -update it rewrites the files.
func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		play func(t *testing.T, ts *testServer, tr *transcript)
	}{
		{"login", "Direct TLS, SASL X-TOKEN, stream restart, bind, roster get, close.", playLogin},
		{"offline", "A message to an offline user is delivered with a delay stamp at their next login.", playOffline},
		{"subscribe", "The RFC 6121 subscription handshake between two online users.", playSubscribe},
		{"unknown-iq", "An iq get in a namespace nobody serves is answered with service-unavailable.", playUnknownIQ},
		{"malformed-jid", "A stanza to a malformed JID bounces with jid-malformed.", playMalformedJID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, nil)
			tr := &transcript{t: t}
			tr.comment(tc.doc)
			tr.comment("Written by go test ./server -run Golden -update; C is what the client sent, S what the server sent.")
			tc.play(t, ts, tr)
			compareGolden(t, filepath.Join("testdata", "golden", tc.name+".xml"), tr.String())
		})
	}
}

func playLogin(t *testing.T, ts *testServer, tr *transcript) {
	c := tr.dial(ts, "alice")
	c.send(streamHeader)
	c.expectFeatures()
	c.send(authXToken(t, ts, "alice"))
	c.expect(1)
	c.send(streamHeader)
	c.expectFeatures()
	c.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>golden</resource></bind></iq>`)
	c.expect(1)
	c.send(`<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>`)
	c.expect(1)
	c.close()
}

func playOffline(t *testing.T, ts *testServer, tr *transcript) {
	visit := tr.login(ts, "bob")
	visit.quiet = true
	visit.close()
	tr.comment("bob logged out: his account exists, he is offline")
	alice := tr.login(ts, "alice")
	alice.send(`<message to='bob@localhost' type='chat' id='m1'><body>while you were out</body></message>`)
	// The ping's answer comes after the message was handled: it is stored.
	alice.send(`<iq type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	alice.expect(1)
	bob := tr.login(ts, "bob")
	bob.send(`<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>`)
	bob.expect(1)
	bob.send(`<presence/>`)
	bob.expect(2) // his own presence, the stored message
	bob.close()
	alice.close()
}

func playSubscribe(t *testing.T, ts *testServer, tr *transcript) {
	alice := tr.login(ts, "alice")
	bob := tr.login(ts, "bob")
	for _, c := range []*goldenConn{alice, bob} {
		c.send(`<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>`)
		c.expect(1)
		c.send(`<presence/>`)
		c.expect(1)
	}
	alice.send(`<presence to='bob@localhost' type='subscribe' id='sub1'/>`)
	alice.expect(1) // roster push: ask='subscribe'
	bob.expect(1)   // the subscription request
	bob.send(`<presence to='alice@localhost' type='subscribed' id='sub2'/>`)
	bob.expect(1)   // roster push: from
	alice.expect(3) // roster push: to, subscribed, bob's presence
	bob.close()
	alice.expect(1) // bob's unavailable presence
	alice.close()
}

func playUnknownIQ(t *testing.T, ts *testServer, tr *transcript) {
	alice := tr.login(ts, "alice")
	alice.send(`<iq type='get' id='q1' to='localhost'><query xmlns='urn:example:nobody-serves-this'/></iq>`)
	alice.expect(1)
	alice.send(`<iq type='set' id='q2'><query xmlns='urn:example:nobody-serves-this'><x/></query></iq>`)
	alice.expect(1)
	alice.close()
}

func playMalformedJID(t *testing.T, ts *testServer, tr *transcript) {
	alice := tr.login(ts, "alice")
	alice.send(`<message to='bob@@localhost' type='chat' id='m1'><body>hi</body></message>`)
	alice.expect(1)
	alice.send(`<iq type='get' id='q1' to='a@b@c'><ping xmlns='urn:xmpp:ping'/></iq>`)
	alice.expect(1)
	alice.close()
}

// authXToken is the client's <auth/> with a fresh token for user.
func authXToken(t *testing.T, ts *testServer, user string) string {
	payload := "\x00" + user + "\x00" + ts.token(t, user)
	return `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-TOKEN'>` + base64.StdEncoding.EncodeToString([]byte(payload)) + `</auth>`
}

// transcript collects the lines of one exchange.
type transcript struct {
	t       *testing.T
	lines   []string
	sentIDs map[string]bool // stanza ids the clients chose
}

func (tr *transcript) comment(s string) { tr.lines = append(tr.lines, "# "+s) }

// add records one line; in the server's lines, a stanza id no client
// sent is one the server made up and reads {server-id}.
func (tr *transcript) add(who, dir, s string) {
	s = normalize(s)
	if dir == "C" {
		for _, m := range stanzaID.FindAllStringSubmatch(s, -1) {
			if tr.sentIDs == nil {
				tr.sentIDs = map[string]bool{}
			}
			tr.sentIDs[m[3]] = true
		}
	} else {
		s = stanzaID.ReplaceAllStringFunc(s, func(attr string) string {
			m := stanzaID.FindStringSubmatch(attr)
			if tr.sentIDs[m[3]] {
				return attr
			}
			return m[1] + m[2] + "{server-id}" + m[2]
		})
	}
	tr.lines = append(tr.lines, dir+" "+who+": "+s)
}

// stanzaID matches an id attribute of a stanza (not the stream header's,
// which normalize has replaced already).
var stanzaID = regexp.MustCompile(`(\sid=)(['"])([^'"{]*)['"]`)

// String is the transcript as the golden file holds it.
func (tr *transcript) String() string { return strings.Join(tr.lines, "\n") + "\n" }

// dial opens a raw direct TLS connection for who.
func (tr *transcript) dial(ts *testServer, who string) *goldenConn {
	tr.t.Helper()
	conn := xmpptest.DialRawTLS(tr.t, ts.directTLS, ts.tlsConfig()).Conn()
	rec := &recorder{r: bufio.NewReader(conn)}
	return &goldenConn{t: tr.t, tr: tr, who: who, conn: conn, rec: rec, dec: xml.NewDecoder(rec)}
}

// login dials for user and logs in with the resource "golden", keeping
// the negotiation out of the transcript (the "login" transcript has it).
func (tr *transcript) login(ts *testServer, user string) *goldenConn {
	tr.t.Helper()
	c := tr.dial(ts, user)
	c.quiet = true
	c.send(streamHeader)
	c.expectFeatures()
	c.send(authXToken(tr.t, ts, user))
	c.expect(1)
	c.send(streamHeader)
	c.expectFeatures()
	c.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>golden</resource></bind></iq>`)
	c.expect(1)
	c.quiet = false
	tr.comment(user + " logged in as " + user + "@" + testHost + "/golden")
	return c
}

// goldenConn is one client of a transcript: a TLS socket whose incoming
// bytes are cut into the server's top-level elements.
type goldenConn struct {
	t     *testing.T
	tr    *transcript
	who   string
	conn  net.Conn
	rec   *recorder
	dec   *xml.Decoder
	depth int
	quiet bool // leave lines out of the transcript
}

func (c *goldenConn) send(s string) {
	c.t.Helper()
	if !c.quiet {
		c.tr.add(c.who, "C", s)
	}
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("%s: write: %v\n%s", c.who, err, c.tr)
	}
}

// expect reads n elements at the stream's top level, recording them and
// any stream header or declaration on the way.
func (c *goldenConn) expect(n int) {
	c.t.Helper()
	for i := 0; i < n; {
		s, top, err := c.next()
		if err != nil {
			c.t.Fatalf("%s: reading server element %d of %d: %v\ntranscript so far:\n%s", c.who, i+1, n, err, c.tr)
		}
		if !c.quiet {
			c.tr.add(c.who, "S", s)
		}
		if top {
			i++
		}
	}
}

// expectFeatures reads up to and including <stream:features/>.
func (c *goldenConn) expectFeatures() {
	c.t.Helper()
	c.expect(1)
	if last := c.tr.lines[len(c.tr.lines)-1]; !c.quiet && !strings.Contains(last, "features") {
		c.t.Fatalf("%s: want stream features, got %s", c.who, last)
	}
}

// close ends the stream and records everything the server sends until it
// closes the connection: stanzas still queued for this client included.
func (c *goldenConn) close() {
	c.t.Helper()
	c.send(`</stream:stream>`)
	for {
		s, _, err := c.next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			c.t.Fatalf("%s: reading until close: %v\ntranscript so far:\n%s", c.who, err, c.tr)
		}
		if !c.quiet {
			c.tr.add(c.who, "S", s)
		}
	}
}

// next returns the raw bytes of the server's next item: a declaration, a
// stream header or end, or a whole top-level element (top true).
func (c *goldenConn) next() (s string, top bool, err error) {
	c.conn.SetReadDeadline(time.Now().Add(goldenTimeout))
	var start int64
	for {
		before := c.dec.InputOffset()
		tok, err := c.dec.RawToken()
		if err != nil {
			return "", false, err
		}
		raw := func(from int64) string { return string(c.rec.buf[from:c.dec.InputOffset()]) }
		switch tk := tok.(type) {
		case xml.ProcInst:
			return raw(before), false, nil
		case xml.StartElement:
			if tk.Name.Space == "stream" && tk.Name.Local == "stream" {
				c.depth = 1
				return raw(before), false, nil
			}
			if c.depth == 1 {
				start = before
			}
			c.depth++
		case xml.EndElement:
			c.depth--
			switch c.depth {
			case 0:
				return raw(before), false, nil
			case 1:
				return raw(start), true, nil
			}
		}
	}
}

// recorder keeps every byte the decoder reads, so that InputOffset
// indexes buf. It is an io.ByteReader: the decoder does not buffer ahead.
type recorder struct {
	r   *bufio.Reader
	buf []byte
}

func (r *recorder) ReadByte() (byte, error) {
	b, err := r.r.ReadByte()
	if err == nil {
		r.buf = append(r.buf, b)
	}
	return b, err
}

func (r *recorder) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = b
	return 1, nil
}

// normalizers replace what varies between runs by a placeholder.
var normalizers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(<stream:stream\b[^>]*\bid=)(['"])[^'"]*(['"])`), `${1}${2}{stream-id}${3}`},
	{regexp.MustCompile(`(mechanism=['"]X-TOKEN['"]>)[^<]*(</auth>)`), `${1}{token}${2}`},
	{regexp.MustCompile(`(\bstamp=)(['"])[^'"]*(['"])`), `${1}${2}{stamp}${3}`},
	// The server's caps ver hashes every feature the modules register
	// (TestServerCaps checks it against the disco#info).
	{regexp.MustCompile(`(<c xmlns=['"]http://jabber.org/protocol/caps['"][^>]*\bver=)(['"])[^'"]*(['"])`), `${1}${2}{caps-ver}${3}`},
}

func normalize(s string) string {
	for _, n := range normalizers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return s
}

// compareGolden compares got with the file at path, or rewrites the file
// with -update.
func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(want, []byte(got)) {
		t.Errorf("transcript differs from %s (-want +got; -update rewrites it):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff is a minimal line diff (longest common subsequence): lines
// only in a start with "-", lines only in b with "+".
func lineDiff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			fmt.Fprintf(&out, "  %s\n", x[i])
			i, j = i+1, j+1
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			fmt.Fprintf(&out, "- %s\n", x[i])
			i++
		default:
			fmt.Fprintf(&out, "+ %s\n", y[j])
			j++
		}
	}
	return out.String()
}
