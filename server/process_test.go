package server_test

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"ottr.im/ottr/internal/xmpptest"
)

// startProcess runs bin with args (and env added to this process's
// environment) until the test ends, when it is killed and waited for;
// its standard output and error go to the returned buffer, which is
// logged under name if the test failed.
func startProcess(t *testing.T, name string, env []string, bin string, args ...string) *xmpptest.LogBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out := new(xmpptest.LogBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s's output:\n%s", name, out.String())
		}
	})
	return out
}
