package testtool_test

import (
	"os/exec"
	"runtime"
	"testing"

	"ottr.im/ottr/internal/testtool"
)

func TestPath(t *testing.T) {
	want, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on PATH")
	}
	if got := testtool.Path(t, "sh", "dash"); got != want {
		t.Errorf("Path(sh) = %q, want %q", got, want)
	}
}

// TestMissing checks that a missing program skips the test outside CI
// and fails it in CI, through a recorder that stands for the test.
func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		ci              string
		skipped, failed bool
	}{
		{"", true, false},
		{"1", false, true},
	} {
		t.Setenv("CI", tc.ci)
		r := &recorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			testtool.Path(r, "ottr-no-such-program", "nothing")
			r.returned = true
		}()
		<-done
		if r.returned || r.skipped != tc.skipped || r.failed != tc.failed {
			t.Errorf("CI=%q: returned %v, skipped %v, failed %v; want skipped %v, failed %v",
				tc.ci, r.returned, r.skipped, r.failed, tc.skipped, tc.failed)
		}
	}
}

// recorder notes a Skipf or Fatalf and ends the goroutine as they do.
type recorder struct {
	testing.TB
	skipped, failed, returned bool
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(string, ...any) {
	r.skipped = true
	runtime.Goexit()
}

func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
	runtime.Goexit()
}
