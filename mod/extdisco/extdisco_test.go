package extdisco

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"

	"ottr.im/ottr/internal/routertest"
)

func TestCredentials(t *testing.T) {
	// The example of the TURN REST API draft (draft-uberti-behave-turn-rest).
	u, p := Credentials("north", "alice@example.com", time.Unix(1700000000, 0))
	mac := hmac.New(sha1.New, []byte("north"))
	mac.Write([]byte("1700000000:alice@example.com"))
	if u != "1700000000:alice@example.com" || p != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Errorf("Credentials = %q, %q", u, p)
	}
}

func TestServicesAndCredentials(t *testing.T) {
	core, _ := routertest.New(t)
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	err := Register(core, Options{Now: func() time.Time { return now }, Services: []Service{
		{Type: "stun", Host: "stun.example.org", Port: 3478, Transport: "udp"},
		{Type: "turn", Host: "turn.example.org", Port: 3478, Transport: "udp", Secret: "0123456789abcdef", TTL: time.Hour, Name: "Relay"},
		{Type: "turns", Host: "turn.example.org", Port: 5349, Transport: "tcp", Secret: "fedcba9876543210", Restricted: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	alice := routertest.Bind(t, core, "alice@localhost/phone")
	got := routertest.Ask(t, core, alice, `<iq type='get' id='1' to='localhost'><services xmlns='urn:xmpp:extdisco:2'/></iq>`)
	wantUser, wantPass := Credentials("0123456789abcdef", "alice@localhost", now.Add(time.Hour))
	for _, want := range []string{
		`<service type="stun" host="stun.example.org" port="3478" transport="udp"></service>`,
		`<service type="turn" host="turn.example.org" port="3478" transport="udp" name="Relay" restricted="1" username="` + wantUser + `" password="` + wantPass + `" expires="2026-11-30T13:00:00Z"></service>`,
		`<service type="turns" host="turn.example.org" port="5349" transport="tcp" restricted="1"></service>`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("services answer\n%s\nlacks\n%s", got, want)
		}
	}
	if n := strings.Count(got, "<service "); n != 3 {
		t.Errorf("%d services, want 3", n)
	}
	got = routertest.Ask(t, core, alice, `<iq type='get' id='2' to='localhost'><services xmlns='urn:xmpp:extdisco:2' type='stun'/></iq>`)
	if strings.Count(got, "<service ") != 1 || !strings.Contains(got, `type="stun"`) {
		t.Errorf("services of type stun: %s", got)
	}
	// The restricted one's credentials on request.
	got = routertest.Ask(t, core, alice, `<iq type='get' id='3' to='localhost'><credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.example.org' type='turns'/></credentials></iq>`)
	u, p := Credentials("fedcba9876543210", "alice@localhost", now.Add(DefaultTTL))
	if !strings.Contains(got, `<credentials xmlns="urn:xmpp:extdisco:2"><service type="turns"`) || !strings.Contains(got, `username="`+u+`" password="`+p+`"`) {
		t.Errorf("credentials answer %s", got)
	}
	for _, tc := range []struct{ name, iq, want string }{
		{"stun has none", `<iq type='get' id='4' to='localhost'><credentials xmlns='urn:xmpp:extdisco:2'><service host='stun.example.org' type='stun'/></credentials></iq>`, "item-not-found"},
		{"wrong port", `<iq type='get' id='5' to='localhost'><credentials xmlns='urn:xmpp:extdisco:2'><service host='turn.example.org' type='turn' port='1'/></credentials></iq>`, "item-not-found"},
		{"no service", `<iq type='get' id='6' to='localhost'><credentials xmlns='urn:xmpp:extdisco:2'/></iq>`, "bad-request"},
		{"set", `<iq type='set' id='7' to='localhost'><services xmlns='urn:xmpp:extdisco:2'/></iq>`, "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := routertest.Ask(t, core, alice, tc.iq); !strings.Contains(got, tc.want) {
				t.Errorf("answer %s, want %s", got, tc.want)
			}
		})
	}
	// Not a local user: a component's domain, say.
	bot := routertest.NewTarget(t, "bot.elsewhere.example")
	if got := routertest.Ask(t, core, bot, `<iq type='get' id='8' to='localhost'><services xmlns='urn:xmpp:extdisco:2'/></iq>`); !strings.Contains(got, "forbidden") || regexp.MustCompile(`password=`).MatchString(got) {
		t.Errorf("a non-local entity got %s", got)
	}
	if fs := strings.Join(core.Features(), " "); !strings.Contains(fs, NS) {
		t.Errorf("features %s lack %s", fs, NS)
	}
}

func TestNoServicesNoFeature(t *testing.T) {
	core, _ := routertest.New(t)
	if err := Register(core, Options{}); err != nil {
		t.Fatal(err)
	}
	if fs := strings.Join(core.Features(), " "); strings.Contains(fs, NS) {
		t.Errorf("features %s advertise extdisco without a service", fs)
	}
}
