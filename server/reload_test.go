package server

import (
	"slices"
	"testing"
	"time"

	"ottr.im/ottr/config"
)

// restartKeys names what a reload leaves for the restart, and nothing it
// applies; withReloaded takes exactly what it applies.
func TestRestartKeys(t *testing.T) {
	prev := config.Default()
	prev.Hosts = []config.Host{{Name: "example.org", OTPSeed: "XVGR73KMZH2M4XMY", TokenSecret: "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7"}, {Name: "old.example"}}
	next := config.Default()
	next.Hosts = []config.Host{{Name: "example.org", OTPSeed: "MFRGGZDFMZTWQ2LK", TokenSecret: "NBSWY3DPEB3W64TMMQQQ6YTUMRSXG4ZA",
		PreviousOTPSeed: "XVGR73KMZH2M4XMY", PreviousTokenSecret: "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7", PreviousUntil: time.Now()},
		{Name: "new.example"}}
	next.DataDir = "/elsewhere"
	next.C2S.Listen = []string{"127.0.0.1:5333"}
	next.Limits.MaxConnections = 7
	next.Limits.SendQueue = 99
	next.Admin.Listen = "127.0.0.1:5290"
	got := restartKeys(prev, next)
	for _, want := range []string{"data_dir", "c2s.listen", "limits.send_queue", "admin.listen", "host[1] (new host new.example)", "host old.example (removed)"} {
		if !slices.Contains(got, want) {
			t.Errorf("restartKeys %v lacks %q", got, want)
		}
	}
	for _, k := range got {
		switch k {
		case "limits.max_connections", "host[0].otp_seed", "host[0].token_secret", "host[0].previous_until", "token":
			t.Errorf("restartKeys lists %q, which a reload applies", k)
		}
	}
	live := withReloaded(prev, next)
	if live.Limits.MaxConnections != 7 || live.Limits.SendQueue == 99 || live.Hosts[0].OTPSeed != "MFRGGZDFMZTWQ2LK" ||
		live.Hosts[0].PreviousOTPSeed == "" || live.DataDir == "/elsewhere" || len(live.Hosts) != 2 || live.Hosts[1].Name != "old.example" {
		t.Errorf("withReloaded: %+v", live)
	}
	if prev.Hosts[0].OTPSeed != "XVGR73KMZH2M4XMY" {
		t.Error("withReloaded changed the configuration it started from")
	}
	if got := restartKeys(prev, prev); len(got) != 0 {
		t.Errorf("restartKeys of an unchanged configuration: %v", got)
	}
}
