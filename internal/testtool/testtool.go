// Package testtool is how a test finds the third-party programs and
// packages it drives (coturn, pebble, slixmpp, node, ...): when one is
// missing the test is skipped, except in CI (the CI environment variable
// set), where .ci/run installs every one of them and their absence is a
// failure.
package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Missing ends the test for want of what: skipped, or failed in CI.
func Missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("missing, and required in CI: %s", what)
	}
	t.Skipf("missing %s", what)
}

// Path returns the path of the program name, or ends the test as Missing
// does, naming the Debian package pkg that has it.
func Path(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Missing(t, fmt.Sprintf("%s (apt-get install %s)", name, pkg))
	}
	return path
}
