package caps_test

import (
	"bytes"
	"encoding/xml"
	"reflect"
	"testing"

	"mellium.im/xmlstream"

	"ottr.im/ottr/internal/caps"
)

func encode(t *testing.T, r xml.TokenReader) string {
	t.Helper()
	var buf bytes.Buffer
	e := xml.NewEncoder(&buf)
	if _, err := xmlstream.Copy(e, r); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestQuery writes a disco#info query and reads it back with Parse: the
// same identities, features and forms, the same verification string.
func TestQuery(t *testing.T) {
	in := caps.Info{
		Identities: []caps.Identity{{Category: "store", Type: "file", Name: "HTTP File Upload"}, {Category: "client", Type: "pc", Lang: "en"}},
		Features:   []string{caps.NSInfo, "urn:xmpp:http:upload:0"},
		Forms: []caps.Form{{Type: "urn:xmpp:http:upload:0", Fields: []caps.Field{
			{Var: "max-file-size", Type: "text-single", Values: []string{"1000"}},
			{Var: "two", Values: []string{"a", "b"}},
		}}},
	}
	for _, tc := range []struct{ node, want string }{
		{"", `<query xmlns="http://jabber.org/protocol/disco#info">`},
		{"https://ottr.im#ver", `<query xmlns="http://jabber.org/protocol/disco#info" node="https://ottr.im#ver">`},
	} {
		got := encode(t, in.Query(tc.node))
		want := tc.want +
			`<identity category="store" type="file" name="HTTP File Upload"></identity>` +
			`<identity category="client" type="pc" xml:lang="en"></identity>` +
			`<feature var="http://jabber.org/protocol/disco#info"></feature><feature var="urn:xmpp:http:upload:0"></feature>` +
			`<x xmlns="jabber:x:data" type="result"><field var="FORM_TYPE" type="hidden"><value>urn:xmpp:http:upload:0</value></field>` +
			`<field var="max-file-size" type="text-single"><value>1000</value></field>` +
			`<field var="two"><value>a</value><value>b</value></field></x></query>`
		if got != want {
			t.Errorf("node %q:\n got %s\nwant %s", tc.node, got, want)
		}
		back, err := parse(t, got)
		if err != nil {
			t.Fatal(err)
		}
		in2 := in
		in2.Forms = []caps.Form{{Type: in.Forms[0].Type, Fields: []caps.Field{
			{Var: "max-file-size", Values: []string{"1000"}}, {Var: "two", Values: []string{"a", "b"}},
		}}}
		if !reflect.DeepEqual(back, in2) || back.Ver() != in.Ver() {
			t.Errorf("read back %+v, want %+v", back, in2)
		}
	}
	if got, want := encode(t, caps.Info{}.Query("")), `<query xmlns="http://jabber.org/protocol/disco#info"></query>`; got != want {
		t.Errorf("empty: %s, want %s", got, want)
	}
}
