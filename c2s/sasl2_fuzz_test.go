package c2s

import (
	"bytes"
	"encoding/xml"
	"errors"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/stream"
)

// FuzzSASL2Authenticate feeds arbitrary bytes to the SASL2 element
// parser: it never panics, what it accepts is within the limits
// (checkAuthenticate), a refusal past them is a policy-violation stream
// error, and every Bind2 inline element it keeps re-serializes to XML
// that parses back to the same name.
func FuzzSASL2Authenticate(f *testing.F) {
	for _, s := range []string{
		`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>AGFsaWNlAHNlY3JldA==</initial-response></authenticate>`,
		`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='X-TOKEN'><initial-response>AA==</initial-response>` +
			`<user-agent id='d9f2bd1b-6a43-4c37-9b4e-2b3a6b1a0f11'><software>app</software><device>phone</device></user-agent>` +
			`<bind xmlns='urn:xmpp:bind:0'><tag>app</tag><enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='urn:xmpp:sm:3' resume='true' max='60'/><inactive xmlns='urn:xmpp:csi:0'/></bind>` +
			`<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>`,
		`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-ENDP'><initial-response>YQA=</initial-response><fast xmlns='urn:xmpp:fast:0' count='7' invalidate='true'/><resume xmlns='urn:xmpp:sm:3' previd='x' h='3'/></authenticate>`,
		`<response xmlns='urn:xmpp:sasl:2'>cj1mb28=</response>`,
		`<abort xmlns='urn:xmpp:sasl:2'/>`,
		`<authenticate xmlns='urn:xmpp:sasl:2'><bind xmlns='urn:xmpp:bind:0'><x:y xmlns:x='urn:a' a='&lt;&apos;'>t<z/></x:y></bind></authenticate>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := readSASL2(xml.NewDecoder(bytes.NewReader(b)))
		var se stream.Error
		if errors.As(err, &se) && se.Err == stream.PolicyViolation.Err {
			return
		}
		if err != nil {
			return
		}
		if len(req.Payload) > maxSASLPayload || (req.InitialResponse != nil && len(*req.InitialResponse) > maxSASLPayload) {
			t.Fatalf("payload past the limit accepted")
		}
		if ua := req.UserAgent; ua != nil && (len(ua.ID) > maxAgentID || len(ua.Software) > maxAgentText ||
			len(ua.Device) > maxAgentText || !utf8.ValidString(ua.Software) || !utf8.ValidString(ua.Device)) {
			t.Fatalf("user-agent past the limits: %+v", ua)
		}
		if req.Bind == nil {
			return
		}
		if len(req.Bind.Tag) > maxBind2Tag {
			t.Fatalf("tag of %d bytes accepted", len(req.Bind.Tag))
		}
		for _, f := range req.Bind.Features {
			raw := f.raw()
			var back inlineRequest
			if err := xml.Unmarshal(raw, &back); err != nil {
				t.Fatalf("inline element %v re-serialized as %q, which does not parse: %v", f.XMLName, raw, err)
			}
			if back.XMLName != f.XMLName {
				t.Fatalf("inline element %v came back as %v from %q", f.XMLName, back.XMLName, raw)
			}
		}
	})
}
