package element

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// canon parses XML into a comparable list of tokens: namespace
// declaration attributes dropped (the names carry the namespaces),
// attributes sorted, adjacent text merged.
func canon(t testing.TB, b []byte) []string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	var out []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("canon: %v in %q", err, b)
		}
		switch tt := tok.(type) {
		case xml.StartElement:
			var attrs []string
			for _, a := range tt.Attr {
				if isNSDecl(a) {
					continue
				}
				attrs = append(attrs, a.Name.Space+"|"+a.Name.Local+"="+a.Value)
			}
			sortStrings(attrs)
			out = append(out, "<"+tt.Name.Space+"|"+tt.Name.Local+" "+strings.Join(attrs, " "))
		case xml.EndElement:
			out = append(out, ">"+tt.Name.Space+"|"+tt.Name.Local)
		case xml.CharData:
			if len(tt) == 0 {
				// An empty CDATA section: no text at all, as a
				// writer that drops it says too.
				continue
			}
			if n := len(out); n > 0 && strings.HasPrefix(out[n-1], "#") {
				out[n-1] += string(tt)
			} else {
				out = append(out, "#"+string(tt))
			}
		}
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// wrap puts an element in a jabber:client context, as on a stream.
func wrap(b []byte) []byte {
	return append(append([]byte("<stream xmlns='jabber:client'>"), b...), "</stream>"...)
}

// viaTokens reads el with encoding/xml as the slow path does and writes
// it back with the token serializer.
func viaTokens(t testing.TB, el []byte) ([]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(wrap(el)))
	if _, err := d.Token(); err != nil {
		return nil, err
	}
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, errors.New("not an element")
	}
	st, err := Read(start.Copy(), d, Limits{MaxTokens: 1 << 16, MaxBytes: 1 << 20, MaxDepth: 64})
	if err != nil {
		return nil, err
	}
	// The rest must be only the wrapper's end.
	if tok, err := d.Token(); err != nil {
		return nil, err
	} else if _, ok := tok.(xml.EndElement); !ok {
		return nil, errors.New("trailing content")
	}
	return st.AppendXML(nil), nil
}

var rawCases = []string{
	`<message to='bob@example.org' type='chat' id='1'><body>hi &amp; &lt;bye&gt; &#x263A; &#9731;</body></message>`,
	`<message xmlns='jabber:client' to='bob@example.org'><body xml:lang='de'>Hallo</body><x xmlns='urn:x' a='1'><y b="2"/></x></message>`,
	`<message xmlns:e='urn:extra' e:flag='yes' xml:lang='en' to='a@b'><e:thing><e:inner/></e:thing><body><![CDATA[<raw> & stuff]]></body></message>`,
	`<presence/>`,
	`<presence><priority>5</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>`,
	`<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver=''/></iq>`,
	"<message to='a@b' id=\"quo'te\" type='chat'>\n  <body>line1\nline2\ttab</body>\n</message>",
	`<message to='a@b' id='a&#10;b'><body>attr newline</body></message>`,
	// XML 1.0 §2.11: a literal CR or CRLF in an attribute is read as LF;
	// a reference &#xD; stays a CR.
	"<message to='a@b' id='cr\rcrlf\r\nlf\nend' x='a&#xD;\r&#13;b'><body>cr</body></message>",
}

// TestRawRoundTrip checks that the fast path (FromBytes, children kept as
// bytes) and the slow path (encoding/xml tokens) write the same document.
func TestRawRoundTrip(t *testing.T) {
	for _, in := range rawCases {
		slow, err := viaTokens(t, []byte(in))
		if err != nil {
			t.Fatalf("%s: slow path: %v", in, err)
		}
		st, err := FromBytes([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		fast := st.AppendXML(nil)
		if !reflect.DeepEqual(canon(t, wrap(fast)), canon(t, wrap(slow))) {
			t.Errorf("differ:\nin   %s\nfast %s\nslow %s", in, fast, slow)
		}
		// Reading the tokens of a raw stanza and writing them gives the
		// same document too.
		st.SetTokens(st.Tokens())
		viaTok := st.AppendXML(nil)
		if !reflect.DeepEqual(canon(t, wrap(viaTok)), canon(t, wrap(slow))) {
			t.Errorf("tokens of raw differ:\nin   %s\ngot  %s\nslow %s", in, viaTok, slow)
		}
	}
}

func TestFromBytesAddressing(t *testing.T) {
	st, err := FromBytes([]byte(`<message to='Bob@Example.org/R' from='x@y' id='i' type='chat' extra='e'><body>b</body></message>`))
	if err != nil {
		t.Fatal(err)
	}
	if st.To.String() != "bob@example.org/R" || st.From.String() != "x@y" || st.ID != "i" || st.Type != "chat" || len(st.Attr) != 1 {
		t.Fatalf("%+v", st)
	}
	if st.ChildText(NSClient, "body") != "b" {
		t.Fatalf("body %q", st.ChildText(NSClient, "body"))
	}
	_, err = FromBytes([]byte(`<message to='a@@b'><body/></message>`))
	var ae *AddrError
	if !errors.As(err, &ae) {
		t.Fatalf("bad to: %v", err)
	}
	for _, needs := range []string{
		`<cli:message xmlns:cli='jabber:client'/>`,
		`<message xmlns='jabber:server'/>`,
		`<message s:x='1'/>`,
	} {
		if _, err := FromBytes([]byte(needs)); !errors.Is(err, ErrNeedsContext) {
			t.Errorf("%s: %v, want ErrNeedsContext", needs, err)
		}
	}
}

// FuzzRawRoundTrip: for any element encoding/xml accepts, the fast path
// writes the same document as the slow one.
func FuzzRawRoundTrip(f *testing.F) {
	for _, c := range rawCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if emptyDefaultNS.MatchString(in) {
			// xmlns='' puts a child in no namespace: encoding/xml's tokens
			// cannot tell that from "inherit", so the slow path loses it
			// and is no oracle; the fast path keeps the bytes.
			return
		}
		slow, err := viaTokens(t, []byte(in))
		if err != nil {
			return
		}
		st, err := FromBytes([]byte(in))
		var ae *AddrError
		if errors.Is(err, ErrNeedsContext) || errors.Is(err, ErrMalformed) || errors.As(err, &ae) {
			return
		}
		if err != nil {
			t.Fatalf("encoding/xml accepts %q, FromBytes: %v", in, err)
		}
		fast := st.AppendXML(nil)
		cf, cs := canonSafe(wrap(fast)), canonSafe(wrap(slow))
		if cs == nil {
			return
		}
		if cf == nil || !reflect.DeepEqual(cf, cs) {
			t.Fatalf("differ:\nin   %q\nfast %q\nslow %q", in, fast, slow)
		}
	})
}

func canonSafe(b []byte) (out []string) {
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	t := &panicTB{}
	return canon(t, b)
}

// panicTB turns Fatalf into a panic for canonSafe.
type panicTB struct{ testing.TB }

func (*panicTB) Helper()                      {}
func (*panicTB) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

var emptyDefaultNS = regexp.MustCompile(`xmlns\s*=\s*(''|"")`)
