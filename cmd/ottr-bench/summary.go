package main

import (
	"encoding/json"
	"io"
	"math"
	"slices"
	"time"
)

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values
// at or below it. It returns 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Latency is a latency distribution in microseconds.
type Latency struct {
	P50 float64 `json:"p50_us"`
	P99 float64 `json:"p99_us"`
	Max float64 `json:"max_us"`
}

// latencies sorts ds in place and summarizes them.
func latencies(ds []time.Duration) Latency {
	slices.Sort(ds)
	us := func(d time.Duration) float64 { return round(float64(d) / 1e3) }
	var l Latency
	if len(ds) > 0 {
		l = Latency{P50: us(percentile(ds, 50)), P99: us(percentile(ds, 99)), Max: us(ds[len(ds)-1])}
	}
	return l
}

// Summary is the JSON document written on stdout at the end of a run.
// Its field names are stable: bench/compare.sh reads them.
type Summary struct {
	Scenario string `json:"scenario"`
	Label    string `json:"label,omitempty"` // free text from -label
	Addr     string `json:"addr"`
	Host     string `json:"host"`
	Mech     string `json:"mech"`
	TLS      string `json:"tls"` // "starttls" or "direct"
	PIDs     []int  `json:"server_pids,omitempty"`
	Started  string `json:"started"` // RFC 3339

	// Params are the scenario's sizes as given.
	Params map[string]any `json:"params"`

	// Ops is the number of operations that completed (logins, delivered
	// messages, sessions held); Errors counts failures by kind.
	Ops      int64            `json:"ops"`
	Errors   map[string]int64 `json:"errors"`
	Seconds  float64          `json:"seconds"` // the measured phase, wall clock
	OpsPerS  float64          `json:"ops_per_s"`
	Latency  Latency          `json:"latency"`
	OfferedS float64          `json:"offered_per_s,omitempty"` // -rate, msg only

	// ServerCPUPerOp is the server's CPU time (utime+stime of the given
	// pids) over the measured phase divided by Ops; 0 without -pid.
	ServerCPUs     float64 `json:"server_cpu_s"`
	ServerCPUPerOp float64 `json:"server_cpu_us_per_op"`
	// OwnCPUPerOp is the load generator's own CPU per operation.
	OwnCPUs     float64 `json:"own_cpu_s"`
	OwnCPUPerOp float64 `json:"own_cpu_us_per_op"`

	// RSS, idle only: the server's VmRSS before the sessions and after
	// they settled, and the growth per session.
	RSSBeforeKiB     int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB      int64   `json:"rss_after_kib,omitempty"`
	RSSPerSessionKiB float64 `json:"rss_per_session_kib,omitempty"`
}

// round keeps two decimals.
func round(f float64) float64 { return math.Round(f*100) / 100 }

// perOp is d over n operations in microseconds, 0 for no operations.
func perOp(d time.Duration, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return round(float64(d) / 1e3 / float64(n))
}

// write prints the summary as one indented JSON document.
func (s *Summary) write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}
