package c2s

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
)

var frameLimits = GuardLimits{MaxElement: 4096, MaxDepth: 8, MaxAttributes: 16}

// frameAll feeds in (in chunks of size chunk) and returns the elements.
func frameAll(in string, chunk int) (els []string, needs []bool, end bool, err error) {
	f := &framer{lim: frameLimits}
	p := []byte(in)
	for len(p) > 0 {
		k := min(chunk, len(p))
		n, done, ferr := f.feed(p[:k])
		if ferr != nil {
			return els, needs, f.end, ferr
		}
		p = p[n:]
		if done {
			el, nc := f.take()
			els = append(els, string(el))
			needs = append(needs, nc)
		}
		if f.end {
			return els, needs, true, nil
		}
	}
	return els, needs, f.end, nil
}

func TestFramer(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		els      int
		want     string // stream error condition, "" for none
		needs    bool
		end      bool
	}{
		{"two stanzas", ` <message to='a@b'><body>x &amp; y &#x263A;</body></message>` + "\n" + `<presence/>`, 2, "", false, false},
		{"end of stream", `<presence/></stream:stream>`, 1, "", false, true},
		{"cdata and gt", `<message><body><![CDATA[<a> & ]]> ok > fine</body></message>`, 1, "", false, false},
		{"declared prefix", `<message xmlns:e='urn:e'><e:x e:a='1'/></message>`, 1, "", false, false},
		{"stream prefix", `<message><stream:x/></message>`, 1, "", true, false},
		{"spaces in tags", `<message  to = 'a@b' ><body ></body ></message >`, 1, "", false, false},
		{"comment", `<message><!-- c --></message>`, 0, "restricted-xml", false, false},
		{"pi", `<message><?pi x?></message>`, 0, "restricted-xml", false, false},
		{"doctype at top", `<!DOCTYPE x>`, 0, "restricted-xml", false, false},
		{"mismatch", `<message><body></bodx></message>`, 0, "not-well-formed", false, false},
		{"bad entity", `<message><body>&lol;</body></message>`, 0, "not-well-formed", false, false},
		{"bad charref", `<message><body>&#0;</body></message>`, 0, "not-well-formed", false, false},
		{"lt in attr", `<message a='<'/>`, 0, "not-well-formed", false, false},
		{"unquoted", `<message a=b/>`, 0, "not-well-formed", false, false},
		{"duplicate attr", `<message a='1' a='2'/>`, 0, "not-well-formed", false, false},
		{"no space between attrs", `<message a='1'b='2'/>`, 0, "not-well-formed", false, false},
		{"invalid utf8", "<message><body>\xff</body></message>", 0, "not-well-formed", false, false},
		{"control char", "<message><body>\x01</body></message>", 0, "not-well-formed", false, false},
		{"text at top", `hello`, 0, "bad-format", false, false},
		{"too deep", `<message>` + strings.Repeat("<a>", 10), 0, "policy-violation", false, false},
		{"too large", `<message><body>` + strings.Repeat("x", 5000), 0, "policy-violation", false, false},
		{"too many attrs", `<message` + strings.Repeat(" a", 0) + attrsN(20) + `/>`, 0, "policy-violation", false, false},
		{"bad qname", `<message><a:/></message>`, 0, "not-well-formed", false, false},
		{"end without start", `</foo>`, 0, "not-well-formed", false, false},
		{"stream header inside", `<presence/><stream:stream ></stream:stream>`, 0, "bad-format", false, false},
		{"other prefix's stream header", `<s:stream xmlns:s='http://etherx.jabber.org/streams'>`, 0, "bad-format", false, false},
		{"space flood", strings.Repeat(" ", 5000), 0, "policy-violation", false, false},
	} {
		for _, chunk := range []int{1, 5, 4096} {
			els, needs, end, err := frameAll(tc.in, chunk)
			got := ""
			var le *LimitError
			if errors.As(err, &le) {
				got = le.Err.Err
			} else if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if got != tc.want {
				t.Errorf("%s (chunk %d): error %q, want %q", tc.name, chunk, got, tc.want)
				continue
			}
			if tc.want == "" && (len(els) != tc.els || end != tc.end) {
				t.Errorf("%s (chunk %d): %d elements, end %v; want %d, %v", tc.name, chunk, len(els), end, tc.els, tc.end)
			}
			if tc.want == "" && tc.els > 0 && needs[0] != tc.needs {
				t.Errorf("%s: needsCtx %v", tc.name, needs[0])
			}
		}
	}
}

func attrsN(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(" a")
		b.WriteByte(byte('a' + i%26))
		b.WriteString(strings.Repeat("x", i/26))
		b.WriteString("='1'")
	}
	return b.String()
}

// FuzzFramer: what the framer accepts as an element, encoding/xml parses
// as one element too (the framer is never the more lenient), and chunking
// never changes the result.
func FuzzFramer(f *testing.F) {
	for _, s := range []string{
		`<message to='a@b'><body>x &amp; y</body></message><presence/>`,
		`<message xmlns:e='urn:e'><e:x e:a='1'/><![CDATA[<]]></message>`,
		`<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>`,
		`<message><body>&#x1F600;</body></message></stream:stream>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		els, _, _, err := frameAll(in, 4096)
		els2, _, _, err2 := frameAll(in, 3)
		if (err == nil) != (err2 == nil) || len(els) != len(els2) {
			t.Fatalf("chunking changes the result: %v/%d vs %v/%d", err, len(els), err2, len(els2))
		}
		for _, el := range els {
			doc := `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>` + el + `</stream:stream>`
			d := xml.NewDecoder(strings.NewReader(doc))
			for {
				_, err := d.Token()
				if err != nil {
					if err.Error() == "EOF" {
						break
					}
					t.Fatalf("framer accepted %q, encoding/xml: %v", el, err)
				}
			}
			if !bytes.HasPrefix([]byte(el), []byte("<")) {
				t.Fatalf("element %q", el)
			}
		}
	})
}
