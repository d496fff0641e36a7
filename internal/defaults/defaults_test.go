package defaults

import (
	"testing"
	"time"
)

func TestPositive(t *testing.T) {
	for _, c := range []struct {
		name    string
		in, out time.Duration
	}{
		{"zero takes the default", 0, time.Minute},
		{"negative takes the default", -time.Second, time.Minute},
		{"set stays", time.Second, time.Second},
	} {
		v := c.in
		Positive(&v, time.Minute)
		if v != c.out {
			t.Errorf("%s: %v, want %v", c.name, v, c.out)
		}
	}
	n := 0
	Positive(&n, 5)
	if n != 5 {
		t.Errorf("int: %d, want 5", n)
	}
}
