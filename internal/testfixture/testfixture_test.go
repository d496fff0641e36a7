package testfixture_test

import (
	"testing"
	"time"

	"ottr.im/ottr/auth"
	"ottr.im/ottr/internal/testfixture"
)

// TestToken: a minted token logs in its user once, with the fixture's
// parameters, and no other user.
func TestToken(t *testing.T) {
	v, err := auth.NewVerifier(testfixture.Params(), auth.NewMemoryReplayCache(16), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	tok := testfixture.Token(t, "alice@"+testfixture.Host)
	if err := v.Verify("bob", testfixture.Host, tok); err == nil {
		t.Error("alice's token verified for bob")
	}
	if err := v.Verify("alice", testfixture.Host, tok); err != nil {
		t.Errorf("alice's token: %v", err)
	}
	if err := v.Verify("alice", testfixture.Host, tok); err == nil {
		t.Error("alice's token verified twice")
	}
	if testfixture.Token(t, "alice@"+testfixture.Host) == tok {
		t.Error("two tokens alike: the nonce is not fresh")
	}
}
