package config

import (
	"strings"
	"testing"
)

func TestComponentsValidate(t *testing.T) {
	const secret = "0123456789abcdef"
	tests := []struct {
		name string
		c    Components
		want []string // substrings of the errors, in order
	}{
		{"none", Components{}, nil},
		{"one", Components{Listen: []string{"127.0.0.1:5347"}, Services: []ComponentService{{Name: "push.localhost", Secret: secret}}}, nil},
		{"listen without service", Components{Listen: []string{"127.0.0.1:5347"}}, []string{"components.listen: no [[components.service]]"}},
		{"bad name", Components{Services: []ComponentService{{Name: "a@b", Secret: secret}}}, []string{"components.service[0].name: \"a@b\" is not a domain"}},
		{"empty name", Components{Services: []ComponentService{{Secret: secret}}}, []string{"components.service[0].name"}},
		{"a served host", Components{Services: []ComponentService{{Name: "LocalHost", Secret: secret}}}, []string{"is a served host"}},
		{"twice", Components{Services: []ComponentService{{Name: "p.localhost", Secret: secret}, {Name: "p.localhost", Secret: secret}}}, []string{"components.service[1].name: \"p.localhost\" is listed twice"}},
		{"short secret", Components{Services: []ComponentService{{Name: "p.localhost", Secret: "short"}}}, []string{"components.service[0].secret: must be at least 16"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.c.validate([]Host{{Name: "localhost"}})
			if len(errs) != len(tc.want) {
				t.Fatalf("errors %v, want %d", errs, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %q lacks %q", errs[i], w)
				}
			}
		})
	}
}

func TestComponentsSummaryRedacts(t *testing.T) {
	c := Default()
	c.Components = Components{Listen: []string{"127.0.0.1:5347"}, Services: []ComponentService{{Name: "push.localhost", Secret: "0123456789abcdef"}}}
	s := c.Summary()
	if strings.Contains(s, "0123456789abcdef") || !strings.Contains(s, `name = "push.localhost"`) || !strings.Contains(s, "secret = <set>") {
		t.Errorf("summary:\n%s", s)
	}
}
