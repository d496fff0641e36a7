package main

import (
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// errCounts counts failures by kind; safe for concurrent use.
type errCounts struct {
	mu sync.Mutex
	m  map[string]int64
	n  atomic.Int64
	// first keeps the first error of each kind, for the log.
	first map[string]error
}

func newErrCounts() *errCounts {
	return &errCounts{m: map[string]int64{}, first: map[string]error{}}
}

func (e *errCounts) add(err error) {
	oe := classify("other", err)
	e.mu.Lock()
	e.m[oe.Kind]++
	if _, ok := e.first[oe.Kind]; !ok {
		e.first[oe.Kind] = err
	}
	e.mu.Unlock()
	e.n.Add(1)
}

func (e *errCounts) addKind(kind string, n int64) {
	if n == 0 {
		return
	}
	e.mu.Lock()
	e.m[kind] += n
	e.mu.Unlock()
	e.n.Add(n)
}

func (e *errCounts) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		m[k] = v
	}
	return m
}

// report prints the first error of each kind.
func (e *errCounts) report(w io.Writer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, err := range e.first {
		fmt.Fprintf(w, "ottr-bench: %d× %s, first: %v\n", e.m[k], k, err)
	}
}

// progress prints a line on w every interval until stop is called: the
// operations done so far, the rate over the last interval and the errors.
func progress(w io.Writer, interval time.Duration, name string, total int64, done *atomic.Int64, errs *errCounts) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		last, lastT := done.Load(), time.Now()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				d := done.Load()
				rate := float64(d-last) / now.Sub(lastT).Seconds()
				fmt.Fprintf(w, "%s: %d/%d done, %.0f/s, %d errors\n", name, d, total, rate, errs.n.Load())
				last, lastT = d, now
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

// meter samples the server's and the load generator's CPU time around a
// measured phase.
type meter struct {
	pids    []int
	wall    time.Time
	server  time.Duration
	own     time.Duration
	hasProc bool
}

func startMeter(pids []int) (*meter, error) {
	m := &meter{pids: pids}
	if len(pids) > 0 {
		d, err := procCPU(pids)
		if err != nil {
			return nil, err
		}
		m.server, m.hasProc = d, true
	}
	m.own = ownCPU()
	m.wall = time.Now()
	return m, nil
}

// stop returns the server's and own CPU used since start.
func (m *meter) stop() (server, own time.Duration, err error) {
	own = ownCPU() - m.own
	if m.hasProc {
		d, err := procCPU(m.pids)
		if err != nil {
			return 0, own, err
		}
		server = d - m.server
	}
	return server, own, nil
}

// fill sets the summary's CPU figures for ops operations.
func (s *Summary) fillCPU(server, own time.Duration) {
	s.ServerCPUs = math.Round(server.Seconds()*1000) / 1000
	s.OwnCPUs = math.Round(own.Seconds()*1000) / 1000
	s.ServerCPUPerOp = perOp(server, s.Ops)
	s.OwnCPUPerOp = perOp(own, s.Ops)
}
