package caps_test

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"

	"ottr.im/ottr/internal/caps"
)

func parse(t testing.TB, s string) (caps.Info, error) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	tok, err := d.Token()
	if err != nil {
		t.Fatal(err)
	}
	return caps.Parse(d, tok.(xml.StartElement))
}

// The examples of XEP-0115 §5.2 and §5.3.
func TestVer(t *testing.T) {
	for _, tc := range []struct {
		name, query, want string
	}{
		{"simple", `<query xmlns='http://jabber.org/protocol/disco#info'>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>`, "QgayPKawpkPSDYmwT/WM94uAlu0="},
		{"complex", `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='ip_version' type='text-multi'><value>ipv4</value><value>ipv6</value></field>
    <field var='os'><value>Mac</value></field>
    <field var='os_version'><value>10.5.1</value></field>
    <field var='software'><value>Psi</value></field>
    <field var='software_version'><value>0.11</value></field>
  </x>
</query>`, "q07IKJEyjvHSyhy//CH0CxmKi8w="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := parse(t, tc.query)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Ver(); got != tc.want {
				t.Errorf("ver %s, want %s", got, tc.want)
			}
		})
	}
}

// TestUntrusted: the results XEP-0115 §5.4 says not to trust.
func TestUntrusted(t *testing.T) {
	for name, q := range map[string]string{
		"duplicate identity": `<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc'/><identity category='client' type='pc'/></query>`,
		"duplicate feature":  `<query xmlns='http://jabber.org/protocol/disco#info'><feature var='a'/><feature var='a'/></query>`,
		"no FORM_TYPE":       `<query xmlns='http://jabber.org/protocol/disco#info'><x xmlns='jabber:x:data' type='result'><field var='os'><value>x</value></field></x></query>`,
		"two forms":          `<query xmlns='http://jabber.org/protocol/disco#info'><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>t</value></field></x><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>t</value></field></x></query>`,
		"not disco#info":     `<query xmlns='urn:example'/>`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parse(t, q); !errors.Is(err, caps.ErrInvalid) {
				t.Errorf("err %v, want ErrInvalid", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc'/><feature var='a'/></query>`)
	f.Fuzz(func(t *testing.T, s string) {
		d := xml.NewDecoder(strings.NewReader(s))
		tok, err := d.Token()
		if err != nil {
			return
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			return
		}
		if info, err := caps.Parse(d, start); err == nil {
			_ = info.Ver()
		}
	})
}
