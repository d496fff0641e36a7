package server

import (
	"bytes"
	"runtime"
	"time"
)

// defaultStuckWait is how long Shutdown waits for the server's goroutines
// once it closed the connections they served: past it, they are stuck on
// something other than a connection, and Shutdown reports them instead of
// waiting forever.
const defaultStuckWait = 10 * time.Second

// maxStuckReport bounds the stacks a stuck shutdown reports.
const maxStuckReport = 64 << 10

// stuckGoroutines returns the stacks of the goroutines running ottr's
// code, other than the caller's and Shutdown's, at most maxStuckReport
// bytes of them: what a stuck shutdown waits for. In a process with
// several servers (tests), the others' goroutines are listed too.
func stuckGoroutines() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out bytes.Buffer
	for i, g := range bytes.Split(buf, []byte("\n\n")) {
		// The first is the caller's; Shutdown's own are what waits.
		if i == 0 || !bytes.Contains(g, []byte("ottr.im/ottr/")) || bytes.Contains(g, []byte("server.(*Server).Shutdown")) {
			continue
		}
		if out.Len()+len(g) > maxStuckReport {
			out.WriteString("…\n")
			break
		}
		out.Write(g)
		out.WriteString("\n\n")
	}
	return out.String()
}
