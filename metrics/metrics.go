// Package metrics holds ottr's Prometheus metrics: one Metrics per server,
// on a registry of its own (never the client library's global default
// one), with the Go runtime and process collectors beside ottr's own.
//
// The server counts events through the methods of Metrics, each safe for
// concurrent use and cheap (an atomic add, or a histogram observation);
// Handler serves the registry in the Prometheus text format. The README's
// "Operations" section lists every metric.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Transports are the values of the transport label of ottr_sessions.
const (
	TransportTCP       = "tcp"
	TransportWebSocket = "websocket"
	TransportBOSH      = "bosh"
)

// Results of a store write (ottr_offline_writes_total,
// ottr_archive_writes_total).
const (
	WriteStored  = "stored"  // written
	WriteRefused = "refused" // over the user's quota
	WriteError   = "error"   // the store failed
)

// LoginSuccess is the result label of a successful login; a failed one
// has its SASL condition (not-authorized, temporary-auth-failure, ...).
const LoginSuccess = "success"

// storageBuckets are the bounds of ottr_storage_duration_seconds, from
// 100 µs (a cached read) to 5 s (a write stuck behind a checkpoint).
var storageBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// Metrics are one server's metrics. The zero value is not usable: call
// New.
type Metrics struct {
	reg *prometheus.Registry

	sessions       *prometheus.GaugeVec
	logins         *prometheus.CounterVec
	stanzas        *prometheus.CounterVec
	queueDrops     prometheus.Counter
	offlineWrites  *prometheus.CounterVec
	archiveWrites  *prometheus.CounterVec
	storage        *prometheus.HistogramVec
	limitRefusals  *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	kicks          prometheus.Counter
	startTimestamp prometheus.Gauge
}

// Options configure New.
type Options struct {
	// Version is the server's version, the label of ottr_build_info.
	Version string
}

// New returns the metrics of one server, registered with a registry of
// their own together with the Go runtime and process collectors.
func New(opts Options) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.sessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ottr_sessions",
		Help: "Bound client sessions, by transport (tcp, websocket, bosh); a session waiting for stream-management resumption counts.",
	}, []string{"transport"})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ottr_logins_total",
		Help: "SASL authentication attempts, by mechanism and result: success, or the SASL failure condition.",
	}, []string{"mechanism", "result"})
	m.stanzas = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ottr_stanzas_routed_total",
		Help: "Stanzas clients sent that the server routed, by kind (message, presence, iq).",
	}, []string{"kind"})
	m.queueDrops = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ottr_send_queue_drops_total",
		Help: "Sessions closed because their send queue was full (a client not reading).",
	})
	m.offlineWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ottr_offline_writes_total",
		Help: "Messages written to offline storage, by result (stored, refused: over the user's quota, error).",
	}, []string{"result"})
	m.archiveWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ottr_archive_writes_total",
		Help: "Messages written to the message archive (XEP-0313), by result (stored, refused, error).",
	}, []string{"result"})
	m.storage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ottr_storage_duration_seconds",
		Help:    "Time taken by storage operations on the login and message paths, by operation.",
		Buckets: storageBuckets,
	}, []string{"op"})
	m.limitRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ottr_limit_refusals_total",
		Help: "Connections and logins refused (or, for auth_failures_per_account, delayed) by a limit, by its [limits] key.",
	}, []string{"limit"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ottr_config_reloads_total",
		Help: "Configuration reloads (SIGHUP or ottr ctl reload), by result (success, error).",
	}, []string{"result"})
	m.kicks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ottr_sessions_kicked_total",
		Help: "Sessions ended by an administrator (ottr ctl kick, ottr user kick).",
	})
	m.startTimestamp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ottr_start_time_seconds",
		Help: "When the server started, in seconds since the Unix epoch.",
	})
	m.startTimestamp.Set(float64(time.Now().UnixNano()) / 1e9)
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ottr_build_info",
		Help: "Always 1; the version label is the server's version.",
	}, []string{"version"})
	build.WithLabelValues(opts.Version).Set(1)
	m.reg.MustRegister(
		m.sessions, m.logins, m.stanzas, m.queueDrops, m.offlineWrites,
		m.archiveWrites, m.storage, m.limitRefusals, m.reloads, m.kicks,
		m.startTimestamp, build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Every label value known in advance is there from the start, so a
	// dashboard shows 0 rather than no data.
	for _, t := range []string{TransportTCP, TransportWebSocket, TransportBOSH} {
		m.sessions.WithLabelValues(t)
	}
	for _, k := range []string{"message", "presence", "iq"} {
		m.stanzas.WithLabelValues(k)
	}
	for _, l := range []string{"max_connections", "connections_per_address", "connection_rate",
		"auth_failures_per_address", "auth_failures_per_address_account", "auth_failures_per_account"} {
		m.limitRefusals.WithLabelValues(l)
	}
	for _, r := range []string{WriteStored, WriteRefused, WriteError} {
		m.offlineWrites.WithLabelValues(r)
		m.archiveWrites.WithLabelValues(r)
	}
	return m
}

// CountConnections registers ottr_connections, the client connections
// open, as conns reports them when scraped. Call it once.
func (m *Metrics) CountConnections(conns func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ottr_connections",
		Help: "Client connections open: c2s connections (negotiating or bound), HTTP connections and BOSH sessions; what limits.max_connections caps.",
	}, func() float64 { return float64(conns()) }))
}

// Registry returns the registry the metrics are registered with, for
// tests and for a caller that adds collectors of its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// SessionBound counts a session bound over transport; SessionUnbound
// uncounts it.
func (m *Metrics) SessionBound(transport string) { m.sessions.WithLabelValues(transport).Inc() }

// SessionUnbound uncounts a session counted by SessionBound.
func (m *Metrics) SessionUnbound(transport string) { m.sessions.WithLabelValues(transport).Dec() }

// Login counts one SASL attempt with mechanism: result is LoginSuccess or
// the SASL failure condition.
func (m *Metrics) Login(mechanism, result string) {
	m.logins.WithLabelValues(mechanism, result).Inc()
}

// StanzaRouted counts one stanza a client sent, by its element name.
func (m *Metrics) StanzaRouted(kind string) {
	switch kind {
	case "message", "presence", "iq":
	default:
		kind = "other" // not reached: c2s only routes stanzas
	}
	m.stanzas.WithLabelValues(kind).Inc()
}

// QueueDropped counts a session closed because its send queue was full.
func (m *Metrics) QueueDropped() { m.queueDrops.Inc() }

// OfflineWrite counts one message written to offline storage with
// result WriteStored, WriteRefused or WriteError.
func (m *Metrics) OfflineWrite(result string) { m.offlineWrites.WithLabelValues(result).Add(1) }

// ArchiveWrites counts n messages written to the archive with result.
func (m *Metrics) ArchiveWrites(result string, n int) {
	m.archiveWrites.WithLabelValues(result).Add(float64(n))
}

// Storage records how long one storage operation took, by its name.
func (m *Metrics) Storage(op string, d time.Duration) {
	m.storage.WithLabelValues(op).Observe(d.Seconds())
}

// Refused counts one connection or login refused (or delayed) by the
// limit named by its [limits] key, such as "connection_rate".
func (m *Metrics) Refused(limit string) { m.limitRefusals.WithLabelValues(limit).Inc() }

// Reloaded counts a configuration reload that succeeded or failed.
func (m *Metrics) Reloaded(err error) {
	r := "success"
	if err != nil {
		r = "error"
	}
	m.reloads.WithLabelValues(r).Inc()
}

// Kicked counts n sessions an administrator ended.
func (m *Metrics) Kicked(n int) { m.kicks.Add(float64(n)) }

// Sum returns the values of the counter or gauge family name added up by
// the value of label, such as the logins by result; nil when the family
// has no series.
func (m *Metrics) Sum(name, label string) map[string]int {
	families, err := m.reg.Gather()
	if err != nil {
		return nil
	}
	var out map[string]int
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		out = make(map[string]int)
		for _, s := range f.GetMetric() {
			v := s.GetCounter().GetValue() + s.GetGauge().GetValue()
			for _, l := range s.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += int(v)
				}
			}
		}
	}
	return out
}
