package element

import (
	"encoding/xml"
	"testing"
)

func TestRemoveChildren(t *testing.T) {
	isPrivate := func(s xml.StartElement) bool { return s.Name.Space == "urn:x" && s.Name.Local == "p" }
	for _, tc := range []struct {
		in, want string
		removed  bool
	}{
		{`<message><body>a</body><p xmlns="urn:x"><q/></p><p xmlns="urn:y"/></message>`,
			`<message><body>a</body><p xmlns="urn:y"/></message>`, true},
		{`<message><p xmlns="urn:x"/><body>a</body><p xmlns="urn:x">t</p></message>`,
			`<message><body>a</body></message>`, true},
		// Only direct children.
		{`<message><x xmlns="urn:z"><p xmlns="urn:x"/></x></message>`,
			`<message><x xmlns="urn:z"><p xmlns="urn:x"/></x></message>`, false},
		{`<message/>`, `<message/>`, false},
	} {
		st, err := FromBytes([]byte(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.RemoveChildren(isPrivate); got != tc.removed {
			t.Errorf("%s: removed %v, want %v", tc.in, got, tc.removed)
		}
		if got := string(st.AppendXML(nil)); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}
