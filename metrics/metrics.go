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

	// The children counted on every stanza and session, looked up once.
	byKind      map[string]prometheus.Counter
	byTransport map[string]prometheus.Gauge
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
	// Every label value known in advance is there from the start, so a
	// dashboard shows 0 rather than no data.
	m.sessions = m.gauges("ottr_sessions",
		"Bound client sessions, by transport (tcp, websocket, bosh); a session waiting for stream-management resumption counts.",
		[]string{"transport"}, TransportTCP, TransportWebSocket, TransportBOSH)
	m.logins = m.counters("ottr_logins_total",
		"SASL authentication attempts, by mechanism and result: success, or the SASL failure condition.",
		[]string{"mechanism", "result"})
	m.stanzas = m.counters("ottr_stanzas_routed_total",
		"Stanzas clients sent that the server routed, by kind (message, presence, iq).",
		[]string{"kind"}, "message", "presence", "iq")
	m.queueDrops = m.counters("ottr_send_queue_drops_total",
		"Sessions closed because their send queue was full (a client not reading).", nil).WithLabelValues()
	m.offlineWrites = m.counters("ottr_offline_writes_total",
		"Messages written to offline storage, by result (stored, refused: over the user's quota, error).",
		[]string{"result"}, WriteStored, WriteRefused, WriteError)
	m.archiveWrites = m.counters("ottr_archive_writes_total",
		"Messages written to the message archive (XEP-0313), by result (stored, refused, error).",
		[]string{"result"}, WriteStored, WriteRefused, WriteError)
	m.limitRefusals = m.counters("ottr_limit_refusals_total",
		"Connections and logins refused (or, for auth_failures_per_account, delayed) by a limit, by its [limits] key.",
		[]string{"limit"}, "max_connections", "connections_per_address", "connection_rate",
		"auth_failures_per_address", "auth_failures_per_address_account", "auth_failures_per_account")
	m.reloads = m.counters("ottr_config_reloads_total",
		"Configuration reloads (SIGHUP or ottr ctl reload), by result (success, error).",
		[]string{"result"}, "success", "error")
	m.kicks = m.counters("ottr_sessions_kicked_total",
		"Sessions ended by an administrator (ottr ctl kick, ottr user kick).", nil).WithLabelValues()
	m.startTimestamp = m.gauges("ottr_start_time_seconds",
		"When the server started, in seconds since the Unix epoch.", nil).WithLabelValues()
	m.startTimestamp.Set(float64(time.Now().UnixNano()) / 1e9)
	m.gauges("ottr_build_info", "Always 1; the version label is the server's version.",
		[]string{"version"}).WithLabelValues(opts.Version).Set(1)
	m.storage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ottr_storage_duration_seconds",
		Help: "Time taken by storage operations on the login and message paths, by operation.",
		// From 100 µs (a cached read) to 5 s (a write stuck behind a
		// checkpoint).
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"op"})
	m.byKind = make(map[string]prometheus.Counter)
	for _, k := range []string{"message", "presence", "iq", "other"} {
		m.byKind[k] = m.stanzas.WithLabelValues(k)
	}
	m.byTransport = make(map[string]prometheus.Gauge)
	for _, t := range []string{TransportTCP, TransportWebSocket, TransportBOSH} {
		m.byTransport[t] = m.sessions.WithLabelValues(t)
	}
	m.reg.MustRegister(m.storage,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// counters registers the counter family name with help and labels. A
// family of one label has each of its known values at zero from the
// start, so that a dashboard shows 0 rather than no data.
func (m *Metrics) counters(name, help string, labels []string, known ...string) *prometheus.CounterVec {
	return register(m.reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels), known)
}

// gauges is counters for a gauge family.
func (m *Metrics) gauges(name, help string, labels []string, known ...string) *prometheus.GaugeVec {
	return register(m.reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels), known)
}

// register registers v with reg and makes its children for the known
// values of its one label.
func register[T any, V interface {
	prometheus.Collector
	WithLabelValues(...string) T
}](reg *prometheus.Registry, v V, known []string) V {
	reg.MustRegister(v)
	for _, k := range known {
		v.WithLabelValues(k)
	}
	return v
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
func (m *Metrics) SessionBound(transport string) { m.transport(transport).Inc() }

// SessionUnbound uncounts a session counted by SessionBound.
func (m *Metrics) SessionUnbound(transport string) { m.transport(transport).Dec() }

func (m *Metrics) transport(t string) prometheus.Gauge {
	if g, ok := m.byTransport[t]; ok {
		return g
	}
	return m.sessions.WithLabelValues(t)
}

// Login counts one SASL attempt with mechanism: result is LoginSuccess or
// the SASL failure condition.
func (m *Metrics) Login(mechanism, result string) {
	m.logins.WithLabelValues(mechanism, result).Inc()
}

// StanzaRouted counts one stanza a client sent, by its element name.
func (m *Metrics) StanzaRouted(kind string) {
	c, ok := m.byKind[kind]
	if !ok {
		c = m.byKind["other"] // not reached: c2s only routes stanzas
	}
	c.Inc()
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
