package c2s

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// memStats is what the server process of TestIdleSessionMemory reports.
type memStats struct {
	HeapAlloc, StackInuse uint64
	Goroutines            int
}

// idleSessions is how many sessions TestIdleSessionMemory holds, and
// idleSessionBound the most bytes of live heap and stack each may cost
// the server once its reader parked: the 16 KiB. Measured here
// about 13.8 KiB: crypto/tls 7 KiB (AES-GCM both ways 1.8 KiB, the Conn
// 0.9 KiB, and 3.5 KiB of record and handshake buffers that it keeps at
// the size of the client's hello, which Go's client fills with an
// X25519MLKEM768 key share), the session, link and guard 1.5 KiB, 4 KiB
// of stack (the 2 KiB of the parked goroutine, and stack spans the
// workers left partly free). A reader that no longer parks costs 8 KiB
// of stack and the 1 KiB read buffer more: 19.3 KiB.
const (
	idleSessions     = 200
	idleSessionBound = 16 << 10
)

// TestIdleSessionMemory holds idle bound sessions over TCP and TLS and
// checks what each costs the server, measured in a process of its own
// (this test binary, run again as the server) so that the clients do not
// count: one goroutine (its reader parked) and at most idleSessionBound
// bytes of live heap and stack.
func TestIdleSessionMemory(t *testing.T) {
	if os.Getenv("OTTR_IDLE_MEMORY_SERVER") == "1" {
		idleMemoryServer(t)
		return
	}
	if raceEnabled {
		t.Skip("memory figures under the race detector mean nothing")
	}
	if testing.Short() {
		t.Skip("holds sessions for a few seconds")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleSessionMemory$", "-test.count=1")
	cmd.Env = append(os.Environ(), "OTTR_IDLE_MEMORY_SERVER=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	out := bufio.NewScanner(stdout)
	if !out.Scan() {
		t.Fatalf("the server process said nothing: %v", out.Err())
	}
	ts := &tcpServer{addr: out.Text()}
	stats := func() memStats {
		t.Helper()
		fmt.Fprintln(stdin, "stats")
		var m memStats
		if !out.Scan() {
			t.Fatalf("no stats: %v", out.Err())
		}
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatalf("stats %q: %v", out.Text(), err)
		}
		return m
	}

	before := stats()
	for i := range idleSessions {
		r, _ := ts.dial(t, fmt.Sprint("r", i))
		r.Write(`<presence/>`)
	}
	// Every reader parks parkAfter after its last input: the server keeps
	// one goroutine per session.
	var after memStats
	for deadline := time.Now().Add(parkAfter + 10*time.Second); ; {
		time.Sleep(parkAfter / 2)
		after = stats()
		if after.Goroutines-before.Goroutines <= idleSessions || time.Now().After(deadline) {
			break
		}
	}
	per := (float64(after.HeapAlloc+after.StackInuse) - float64(before.HeapAlloc+before.StackInuse)) / idleSessions
	t.Logf("%d idle sessions: %.0f B of heap and stack each (heap %.0f, stack %.0f), %d goroutines more",
		idleSessions, per,
		(float64(after.HeapAlloc)-float64(before.HeapAlloc))/idleSessions,
		(float64(after.StackInuse)-float64(before.StackInuse))/idleSessions,
		after.Goroutines-before.Goroutines)
	if g := after.Goroutines - before.Goroutines; g > idleSessions {
		t.Errorf("%d goroutines for %d idle sessions, want one each", g, idleSessions)
	}
	if per > idleSessionBound {
		t.Errorf("an idle session costs %.0f B, want at most %d", per, idleSessionBound)
	}
}

// idleMemoryServer is TestIdleSessionMemory's server process: it prints
// its address, then its memory after a GC for each line read, until its
// input ends.
func idleMemoryServer(t *testing.T) {
	ts := serveTCP(t, true)
	fmt.Println(ts.addr)
	in := bufio.NewScanner(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for in.Scan() {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		enc.Encode(memStats{HeapAlloc: ms.HeapAlloc, StackInuse: ms.StackInuse, Goroutines: runtime.NumGoroutine()})
	}
}
