package element_test

import (
	"encoding/xml"
	"testing"

	"ottr.im/ottr/element"
)

func TestAttr(t *testing.T) {
	start := xml.StartElement{Name: xml.Name{Local: "query"}, Attr: []xml.Attr{
		{Name: xml.Name{Space: "urn:other", Local: "node"}, Value: "namespaced"},
		{Name: xml.Name{Local: "node"}, Value: "n1"},
		{Name: xml.Name{Local: "empty"}, Value: ""},
	}}
	for _, tc := range []struct{ local, want string }{
		{"node", "n1"},
		{"empty", ""},
		{"missing", ""},
	} {
		if got := element.Attr(start, tc.local); got != tc.want {
			t.Errorf("Attr(%q) = %q, want %q", tc.local, got, tc.want)
		}
	}
	if got := element.Attr(xml.StartElement{}, "node"); got != "" {
		t.Errorf("no attributes: %q", got)
	}
}
