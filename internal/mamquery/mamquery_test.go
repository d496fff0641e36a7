package mamquery_test

import (
	"errors"
	"strings"
	"testing"

	"mellium.im/xmpp/stanza"

	"ottr.im/ottr/element"
	"ottr.im/ottr/internal/mamquery"
)

func TestParse(t *testing.T) {
	form := func(fields string) string {
		return `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>` + fields + `</x>`
	}
	lim := mamquery.Limits{MaxPage: 3, MaxBytes: 1000}
	for _, tc := range []struct {
		name, query string
		want        stanza.Condition // "" for none
		check       func(mamquery.Request) bool
	}{
		{"empty", ``, "", func(r mamquery.Request) bool { return r.Query.Max == 3 && r.Query.MaxBytes == 1000 }},
		{"with normalized", form(`<field var='with'><value>Bob@Localhost</value></field>`), "", func(r mamquery.Request) bool { return r.Query.With == "bob@localhost" }},
		{"rsm", `<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before>x</before></set><flip-page/>`, "", func(r mamquery.Request) bool {
			return r.Query.Max == 2 && r.Query.Before == "x" && r.Query.Last && r.Flip
		}},
		{"max above the page", `<set xmlns='http://jabber.org/protocol/rsm'><max>100</max></set>`, "", func(r mamquery.Request) bool { return r.Query.Max == 3 }},
		{"ids", form(`<field var='ids'><value>a</value><value> b </value></field>`), "", func(r mamquery.Request) bool { return len(r.Query.IDs) == 2 && r.Query.IDs[1] == "b" }},
		{"too many ids", form(`<field var='ids'><value>a</value><value>b</value><value>c</value><value>d</value></field>`), stanza.PolicyViolation, nil},
		{"unknown field", form(`<field var='color'><value>red</value></field>`), stanza.FeatureNotImplemented, nil},
		{"bad stamp", form(`<field var='start'><value>yesterday</value></field>`), stanza.BadRequest, nil},
		{"bad with", form(`<field var='with'><value>@@</value></field>`), stanza.BadRequest, nil},
		{"bad max", `<set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set>`, stanza.BadRequest, nil},
		{"wrong FORM_TYPE", `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x>`, stanza.BadRequest, nil},
		{"node", ``, stanza.FeatureNotImplemented, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attrs := ` queryid='q1'`
			if tc.name == "node" {
				attrs += ` node='x'`
			}
			st, err := element.FromBytes([]byte(`<iq type='set' id='1'><query xmlns='urn:xmpp:mam:2'` + attrs + `>` + tc.query + `</query></iq>`))
			if err != nil {
				t.Fatal(err)
			}
			r, err := mamquery.Parse(st, lim)
			var se stanza.Error
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Parse: %v", err)
			case tc.want == "" && (r.QueryID != "q1" || !tc.check(r)):
				t.Errorf("Parse = %+v", r)
			case tc.want != "" && (!errors.As(err, &se) || se.Condition != tc.want):
				t.Errorf("Parse error %v, want %s", err, tc.want)
			}
		})
	}
	long := `<iq type='set' id='1'><query xmlns='urn:xmpp:mam:2' queryid='` + strings.Repeat("q", mamquery.MaxQueryIDBytes+1) + `'/></iq>`
	st, _ := element.FromBytes([]byte(long))
	if _, err := mamquery.Parse(st, lim); err == nil {
		t.Error("a queryid over the bound was accepted")
	}
}
