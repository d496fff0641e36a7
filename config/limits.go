package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Byte-size units used by the limits.
const (
	kib = 1 << 10
	mib = 1 << 20
)

// Limits holds every limit of the server, the [limits] table. Sizes are
// integers of bytes, durations strings such as "30s" and rates strings such
// as "100/s". Keys the file leaves out take the values of [DefaultLimits];
// an explicit 0 (or "0s") is checked like any other value, so it is refused
// wherever the range excludes it.
type Limits struct {
	// MaxStanzaBytes is the largest stanza or stream-level element accepted,
	// attributes included, 4 KiB to 64 MiB. Default 262144 (256 KiB).
	MaxStanzaBytes int `toml:"max_stanza_bytes"`
	// MaxPrebindBytes is the largest element accepted on a c2s, WebSocket
	// or BOSH stream before a resource is bound (the stream header, SASL
	// elements, the bind request; for BOSH a request body), 4 KiB to 1 MiB.
	// Above MaxStanzaBytes, MaxStanzaBytes applies. It keeps unauthenticated
	// connections cheap: an X-TOKEN or a PLAIN password is under 1 KiB.
	// Default 16384 (16 KiB).
	MaxPrebindBytes int `toml:"max_prebind_bytes"`
	// MaxDepth is the deepest element nesting below the stanza, 4 to 256.
	// Default 32.
	MaxDepth int `toml:"max_depth"`
	// MaxAttributes is the most attributes on one element, 4 to 1024.
	// Default 64.
	MaxAttributes int `toml:"max_attributes"`
	// AuthTimeout is how long a connection has from connect to bound
	// resource, 1s to 24h. Default 30s.
	AuthTimeout Duration `toml:"auth_timeout"`
	// MaxConnections is the most open client connections in total, c2s
	// and HTTP connections and BOSH sessions together, 1 to 10,000,000.
	// Default 10000.
	MaxConnections int `toml:"max_connections"`
	// ConnectionsPerAddress is the most client connections open at once
	// from one source address (IPv4 address or IPv6 /64), counted as
	// MaxConnections counts them, 1 to 10,000,000; above MaxConnections,
	// MaxConnections applies. Connections from http.trusted_proxies are
	// not counted: they carry many clients. Default 100.
	ConnectionsPerAddress int `toml:"connections_per_address"`
	// ConnectionRate is the sustained rate of new connections per source
	// address. Default 100/s.
	ConnectionRate Rate `toml:"connection_rate"`
	// ConnectionBurst is how many connections a source address may open at
	// once above ConnectionRate, at least 1. Default 200.
	ConnectionBurst int `toml:"connection_burst"`
	// Keepalive is how long the server may send nothing before it sends a
	// whitespace ping, 1s to 24h and shorter than IdleTimeout. Default 60s.
	Keepalive Duration `toml:"keepalive"`
	// IdleTimeout is how long an authenticated session may stay silent
	// before it is closed, 1s to 24h. Default 5m.
	IdleTimeout Duration `toml:"idle_timeout"`
	// ResumptionTimeout is how long a session with XEP-0198 stream
	// management waits for its client to resume it after its connection
	// broke, keeping its resource, presence and what is delivered to it
	// (within SendQueue and SendQueueBytes), 1s to 24h; a client may ask
	// for less. Then it ends as a dropped session does, its
	// unacknowledged messages stored offline. Default 10m.
	ResumptionTimeout Duration `toml:"resumption_timeout"`
	// FastTokenLifetime is how long a XEP-0484 FAST token, which a client
	// gets at login to log in again without its password or app token,
	// is accepted. 1h to 8760h (365 days). Default 336h (14 days).
	FastTokenLifetime Duration `toml:"fast_token_lifetime"`
	// FastTokenRotation is the age from which a FAST token used to log
	// in is replaced by a new one of the full lifetime; 0s replaces it at
	// every use. Less than FastTokenLifetime. Default 24h: a client
	// that comes back within FastTokenLifetime − 24h of its last login
	// always gets in, and its logins between rotations write nothing.
	FastTokenRotation Duration `toml:"fast_token_rotation"`
	// WriteTimeout is how long a write to a client may make no progress
	// before the connection is closed, 1s to 24h. Default 30s.
	WriteTimeout Duration `toml:"write_timeout"`
	// SendQueue is how many stanzas may wait for a slow client before it is
	// disconnected, 16 to 1,000,000. Default 1024.
	SendQueue int `toml:"send_queue"`
	// SendQueueBytes is how many bytes may wait for a slow client before it
	// is disconnected, at least 64 KiB and at least MaxStanzaBytes.
	// Default 4194304 (4 MiB).
	SendQueueBytes int `toml:"send_queue_bytes"`
	// MaxAuthAttempts is the most SASL attempts on one stream, 1 to 20.
	// Default 5.
	MaxAuthAttempts int `toml:"max_auth_attempts"`
	// AuthFailuresAddress is the sustained rate of failed logins (token or
	// password) allowed per source address (IPv4 address or IPv6 /64);
	// past it, password logins from the address are refused unchecked.
	// A token is always checked: a valid one logs in. Default 30/min.
	AuthFailuresAddress Rate `toml:"auth_failures_per_address"`
	// AuthFailuresPair is the sustained rate of failed password logins
	// allowed per source address and account together; past it, password
	// logins from that address to that account are refused unchecked.
	// Default 10/min.
	AuthFailuresPair Rate `toml:"auth_failures_per_address_account"`
	// AuthFailuresAccount is the sustained rate of failed password logins
	// per account from all addresses together past which each further
	// failed answer waits AuthFailureDelay. It never refuses a login, and
	// never delays a right password. Default 10/min.
	AuthFailuresAccount Rate `toml:"auth_failures_per_account"`
	// AuthFailureDelay is how long a failed password answer waits once the
	// account is past AuthFailuresAccount, 0s (no delay) to 30s.
	// Default 2s.
	AuthFailureDelay Duration `toml:"auth_failure_delay"`
	// AuthFailureBurst is how many failed logins are allowed at once above
	// those rates, at least 1. Default 10.
	AuthFailureBurst int `toml:"auth_failure_burst"`
	// OfflineMessages is how many messages are stored per user while they
	// are offline, 0 to 1,000,000; 0 turns offline storage off. Default 1000.
	OfflineMessages int `toml:"offline_messages"`
	// OfflineBytes is how many bytes of messages are stored per user while
	// they are offline, all messages together, 1 KiB to 1 GiB; a message
	// that would pass it is refused like one beyond OfflineMessages.
	// Default 4194304 (4 MiB): a thousand ordinary messages take about 1 MiB.
	OfflineBytes int `toml:"offline_bytes"`
	// VCardBytes is the largest vCard stored, 1 KiB to 16 MiB.
	// Default 65536 (64 KiB).
	VCardBytes int `toml:"vcard_bytes"`
	// PrivateBytes is the largest private XML document stored (XEP-0049),
	// 1 KiB to 16 MiB. Default 65536 (64 KiB).
	PrivateBytes int `toml:"private_bytes"`
	// PrivateDocuments is how many private XML documents (XEP-0049) a user
	// may store, 1 to 100,000. Default 100.
	PrivateDocuments int `toml:"private_documents"`
	// PrivateTotalBytes is how many bytes of private XML a user may store,
	// all documents together, 1 KiB to 1 GiB and at least PrivateBytes.
	// Default 1048576 (1 MiB).
	PrivateTotalBytes int `toml:"private_total_bytes"`
	// RosterItems is the most roster items per user, 10 to 1,000,000.
	// Default 2000.
	RosterItems int `toml:"roster_items"`
	// RosterBytes is how many bytes one user's roster entries may take
	// together (contacts, names, groups and unanswered subscription
	// requests with their status text), 16 KiB to 1 GiB. Default 1048576
	// (1 MiB).
	RosterBytes int `toml:"roster_bytes"`
	// BlockedItems is how many JIDs a user may block (XEP-0191), 10 to
	// 1,000,000; a block request with more items is refused whole.
	// Default 1000.
	BlockedItems int `toml:"blocked_items"`
	// DirectedPresences is how many entities one session may have sent
	// directed presence to and not yet made unavailable, 1 to 100,000:
	// each is remembered so that it learns when the session goes
	// offline. Directed presence to one more is refused with
	// <resource-constraint/>. Default 200.
	DirectedPresences int `toml:"directed_presences"`
	// ArchiveMessages is how many messages one user's message archive
	// (XEP-0313) keeps, 0 to 10,000,000; past it, or past ArchiveBytes,
	// the oldest messages are deleted. 0 turns the archive off.
	// Default 100000.
	ArchiveMessages int `toml:"archive_messages"`
	// ArchiveBytes is how many bytes of messages one user's archive keeps,
	// all messages together, 1 KiB to 1 GiB; a message larger than that
	// alone is not archived. Default 67108864 (64 MiB).
	ArchiveBytes int `toml:"archive_bytes"`
	// ArchiveRetention is how long an archived message is kept, 1h to
	// 876000h (100 years). Default 8760h (365 days).
	ArchiveRetention Duration `toml:"archive_retention"`
	// ArchivePageSize is the most messages one archive query returns, 1
	// to 10,000 (a larger RSM <max/> is capped; half the send queue caps
	// it too). Default 250.
	ArchivePageSize int `toml:"archive_page_size"`
	// PushRegistrations is how many push registrations (XEP-0357: an app
	// server and node a client enabled) one user may hold, 1 to 1000;
	// enabling one more is refused with <resource-constraint/>.
	// Default 8.
	PushRegistrations int `toml:"push_registrations"`
	// PushInterval is the least time between two push notifications for
	// one user, 1s to 24h; the messages between are counted in the next
	// one. Default 5s.
	PushInterval Duration `toml:"push_interval"`
	// PEPNodes is the most personal eventing nodes (XEP-0163: avatar,
	// bookmarks, OMEMO device list and bundles, …) one user may have, 1
	// to 100,000; creating one more, by publish or create, is refused
	// with <resource-constraint/>. Default 256.
	PEPNodes int `toml:"pep_nodes"`
	// PEPItems is the most items one PEP node keeps, what max_items
	// "max" means, 1 to 100,000; configuring more is refused with
	// <not-acceptable/>, publishing past a node's max_items removes its
	// oldest item. Default 256.
	PEPItems int `toml:"pep_items"`
	// PEPItemBytes is the largest PEP item payload, 1 KiB to 16 MiB;
	// above MaxStanzaBytes, MaxStanzaBytes applies. A larger one is
	// refused with <not-acceptable/> and <payload-too-big/>. Default
	// 131072 (128 KiB).
	PEPItemBytes int `toml:"pep_item_bytes"`
	// PEPBytes is the most bytes of PEP item payloads one user keeps, all
	// nodes together, 1 KiB to 1 GiB; a publish that would take the user
	// past it is refused with <resource-constraint/>. Default 4194304
	// (4 MiB).
	PEPBytes int `toml:"pep_bytes"`
	// MUCRooms is the most group chat rooms (XEP-0045) one MUC service
	// holds, persistent and temporary together, 1 to 1,000,000; creating
	// one more is refused with <resource-constraint/>. Default 10000.
	MUCRooms int `toml:"muc_rooms"`
	// MUCRoomsPerUser is the most rooms of one service a user may have
	// created that exist at once, 1 to 100,000. Default 100.
	MUCRoomsPerUser int `toml:"muc_rooms_per_user"`
	// MUCOccupants is the most occupants one room holds, 1 to 100,000,
	// whatever its own max users says: it bounds the fan-out of one
	// message. Default 1000.
	MUCOccupants int `toml:"muc_occupants"`
	// MUCHistoryMessages is the most messages a room keeps in memory for
	// the history sent on join, 0 to 1000 (a room's own history length
	// is capped by it). Default 50.
	MUCHistoryMessages int `toml:"muc_history_messages"`
	// MUCHistoryBytes is the most bytes of those messages per room, 1 KiB
	// to 16 MiB. Default 262144 (256 KiB).
	MUCHistoryBytes int `toml:"muc_history_bytes"`
	// MUCStanzaRate is how many stanzas (messages, presence, nick
	// changes) one occupant may send to a room, past a burst of twice as
	// many; past it a stanza is refused with <resource-constraint/>.
	// Default 10/s.
	MUCStanzaRate Rate `toml:"muc_stanza_rate"`
}

// DefaultLimits returns the limits used for keys the file leaves out.
func DefaultLimits() Limits {
	return Limits{
		MaxStanzaBytes:        256 * kib,
		MaxPrebindBytes:       16 * kib,
		MaxDepth:              32,
		MaxAttributes:         64,
		AuthTimeout:           Duration{30 * time.Second},
		MaxConnections:        10000,
		ConnectionsPerAddress: 100,
		ConnectionRate:        Rate{N: 100, Per: time.Second},
		ConnectionBurst:       200,
		Keepalive:             Duration{60 * time.Second},
		IdleTimeout:           Duration{5 * time.Minute},
		ResumptionTimeout:     Duration{10 * time.Minute},
		FastTokenLifetime:     Duration{14 * 24 * time.Hour},
		FastTokenRotation:     Duration{24 * time.Hour},
		WriteTimeout:          Duration{30 * time.Second},
		SendQueue:             1024,
		SendQueueBytes:        4 * mib,
		MaxAuthAttempts:       5,
		AuthFailuresAddress:   Rate{N: 30, Per: time.Minute},
		AuthFailuresPair:      Rate{N: 10, Per: time.Minute},
		AuthFailuresAccount:   Rate{N: 10, Per: time.Minute},
		AuthFailureDelay:      Duration{2 * time.Second},
		AuthFailureBurst:      10,
		OfflineMessages:       1000,
		OfflineBytes:          4 * mib,
		VCardBytes:            64 * kib,
		PrivateBytes:          64 * kib,
		PrivateDocuments:      100,
		PrivateTotalBytes:     mib,
		RosterItems:           2000,
		RosterBytes:           mib,
		BlockedItems:          1000,
		DirectedPresences:     200,
		ArchiveMessages:       100_000,
		ArchiveBytes:          64 * mib,
		ArchiveRetention:      Duration{365 * 24 * time.Hour},
		ArchivePageSize:       250,
		PushRegistrations:     8,
		PushInterval:          Duration{5 * time.Second},
		PEPNodes:              256,
		PEPItems:              256,
		PEPItemBytes:          128 * kib,
		PEPBytes:              4 * mib,
		MUCRooms:              10_000,
		MUCRoomsPerUser:       100,
		MUCOccupants:          1000,
		MUCHistoryMessages:    50,
		MUCHistoryBytes:       256 * kib,
		MUCStanzaRate:         Rate{N: 10, Per: time.Second},
	}
}

// applyLimitDefaults sets each field of l whose key is not defined to its
// default. Walking the struct means a new field cannot be forgotten.
func applyLimitDefaults(l *Limits, defined func(key ...string) bool) {
	def := reflect.ValueOf(DefaultLimits())
	dst := reflect.ValueOf(l).Elem()
	for i, key := range limitKeys() {
		if !defined("limits", key) {
			dst.Field(i).Set(def.Field(i))
		}
	}
}

// limitKeys returns the TOML keys of the fields of Limits, in field order.
func limitKeys() []string {
	t := reflect.TypeFor[Limits]()
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i] = t.Field(i).Tag.Get("toml")
	}
	return keys
}

// Bounds of the limits, enforced by validate.
const (
	minStanzaBytes    = 4 * kib
	maxStanzaBytes    = 64 * mib
	minPrebindBytes   = 4 * kib
	maxPrebindBytes   = mib
	minDepth          = 4
	maxDepth          = 256
	minAttributes     = 4
	maxAttributes     = 1024
	minLimitDuration  = time.Second
	maxLimitDuration  = 24 * time.Hour
	maxConnections    = 10_000_000
	minSendQueue      = 16
	maxSendQueue      = 1_000_000
	minSendQueueBytes = 64 * kib
	maxAuthAttempts   = 20
	maxOffline        = 1_000_000
	minStoredBytes    = kib
	maxStoredBytes    = 16 * mib
	minRosterItems    = 10
	maxRosterItems    = 1_000_000
	maxQuotaBytes     = 1 << 30
	minRosterBytes    = 16 * kib
	maxPrivateDocs    = 100_000
	minBlockedItems   = 10
	maxBlockedItems   = 1_000_000
	maxDirected       = 100_000
	maxArchive        = 10_000_000
	minRetention      = time.Hour
	maxRetention      = 100 * 365 * 24 * time.Hour
	maxArchivePage    = 10_000
	maxPushRegs       = 1000
	// maxAuthFailureDelay bounds limits.auth_failure_delay: a delayed
	// answer holds its connection.
	maxAuthFailureDelay = 30 * time.Second
)

// validate checks every limit; each error starts with "limits.<key>".
func (l Limits) validate() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("limits."+key+": "+format, args...))
	}
	between := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			add(key, "must be between %d and %d, got %d", lo, hi, v)
		}
	}
	atLeast := func(key string, v, lo int) {
		if v < lo {
			add(key, "must be at least %d, got %d", lo, v)
		}
	}
	duration := func(key string, d Duration) {
		if d.Duration < minLimitDuration || d.Duration > maxLimitDuration {
			add(key, "must be between %v and %v, got %v", minLimitDuration, maxLimitDuration, d.Duration)
		}
	}
	rate := func(key string, r Rate) {
		if err := r.check(); err != nil {
			add(key, "%w", err)
		}
	}

	between("max_stanza_bytes", l.MaxStanzaBytes, minStanzaBytes, maxStanzaBytes)
	between("max_prebind_bytes", l.MaxPrebindBytes, minPrebindBytes, maxPrebindBytes)
	between("max_depth", l.MaxDepth, minDepth, maxDepth)
	between("max_attributes", l.MaxAttributes, minAttributes, maxAttributes)
	duration("auth_timeout", l.AuthTimeout)
	between("max_connections", l.MaxConnections, 1, maxConnections)
	between("connections_per_address", l.ConnectionsPerAddress, 1, maxConnections)
	rate("connection_rate", l.ConnectionRate)
	atLeast("connection_burst", l.ConnectionBurst, 1)
	duration("keepalive", l.Keepalive)
	duration("idle_timeout", l.IdleTimeout)
	if l.Keepalive.Duration > 0 && l.IdleTimeout.Duration > 0 && l.Keepalive.Duration >= l.IdleTimeout.Duration {
		add("keepalive", "must be shorter than limits.idle_timeout (%v), got %v", l.IdleTimeout.Duration, l.Keepalive.Duration)
	}
	duration("resumption_timeout", l.ResumptionTimeout)
	if d := l.FastTokenLifetime.Duration; d < time.Hour || d > 365*24*time.Hour {
		add("fast_token_lifetime", "must be between 1h and 8760h, got %v", d)
	}
	if d := l.FastTokenRotation.Duration; d < 0 || d >= l.FastTokenLifetime.Duration {
		add("fast_token_rotation", "must be at least 0s and less than limits.fast_token_lifetime (%v), got %v", l.FastTokenLifetime.Duration, d)
	}
	duration("write_timeout", l.WriteTimeout)
	between("send_queue", l.SendQueue, minSendQueue, maxSendQueue)
	atLeast("send_queue_bytes", l.SendQueueBytes, minSendQueueBytes)
	if l.SendQueueBytes >= minSendQueueBytes && l.SendQueueBytes < l.MaxStanzaBytes {
		// A stanza of the largest size allowed could never be queued.
		add("send_queue_bytes", "must be at least limits.max_stanza_bytes (%d), got %d", l.MaxStanzaBytes, l.SendQueueBytes)
	}
	between("max_auth_attempts", l.MaxAuthAttempts, 1, maxAuthAttempts)
	rate("auth_failures_per_address", l.AuthFailuresAddress)
	rate("auth_failures_per_address_account", l.AuthFailuresPair)
	rate("auth_failures_per_account", l.AuthFailuresAccount)
	if d := l.AuthFailureDelay.Duration; d < 0 || d > maxAuthFailureDelay {
		add("auth_failure_delay", "must be between 0s and %v, got %v", maxAuthFailureDelay, d)
	}
	atLeast("auth_failure_burst", l.AuthFailureBurst, 1)
	between("offline_messages", l.OfflineMessages, 0, maxOffline)
	between("offline_bytes", l.OfflineBytes, minStoredBytes, maxQuotaBytes)
	between("vcard_bytes", l.VCardBytes, minStoredBytes, maxStoredBytes)
	between("private_bytes", l.PrivateBytes, minStoredBytes, maxStoredBytes)
	between("private_documents", l.PrivateDocuments, 1, maxPrivateDocs)
	between("private_total_bytes", l.PrivateTotalBytes, minStoredBytes, maxQuotaBytes)
	if l.PrivateTotalBytes >= minStoredBytes && l.PrivateTotalBytes < l.PrivateBytes {
		// A document of the largest size allowed could never be stored.
		add("private_total_bytes", "must be at least limits.private_bytes (%d), got %d", l.PrivateBytes, l.PrivateTotalBytes)
	}
	between("roster_items", l.RosterItems, minRosterItems, maxRosterItems)
	between("roster_bytes", l.RosterBytes, minRosterBytes, maxQuotaBytes)
	between("blocked_items", l.BlockedItems, minBlockedItems, maxBlockedItems)
	between("directed_presences", l.DirectedPresences, 1, maxDirected)
	between("archive_messages", l.ArchiveMessages, 0, maxArchive)
	between("archive_bytes", l.ArchiveBytes, minStoredBytes, maxQuotaBytes)
	if d := l.ArchiveRetention.Duration; d < minRetention || d > maxRetention {
		add("archive_retention", "must be between %v and %v, got %v", minRetention, maxRetention, d)
	}
	between("archive_page_size", l.ArchivePageSize, 1, maxArchivePage)
	between("push_registrations", l.PushRegistrations, 1, maxPushRegs)
	duration("push_interval", l.PushInterval)
	between("pep_nodes", l.PEPNodes, 1, 100_000)
	between("pep_items", l.PEPItems, 1, 100_000)
	between("pep_item_bytes", l.PEPItemBytes, kib, 16*mib)
	between("pep_bytes", l.PEPBytes, kib, 1<<30)
	between("muc_rooms", l.MUCRooms, 1, 1_000_000)
	between("muc_rooms_per_user", l.MUCRoomsPerUser, 1, 100_000)
	between("muc_occupants", l.MUCOccupants, 1, 100_000)
	between("muc_history_messages", l.MUCHistoryMessages, 0, 1000)
	between("muc_history_bytes", l.MUCHistoryBytes, minStoredBytes, maxStoredBytes)
	rate("muc_stanza_rate", l.MUCStanzaRate)
	return errs
}

// writeLimits writes every limit in force, one "key = value" line each, in
// the order of the struct. Byte sizes that are whole KiB or MiB get a
// comment saying so.
func writeLimits(b *strings.Builder, l Limits) {
	v := reflect.ValueOf(l)
	for i, key := range limitKeys() {
		switch f := v.Field(i).Interface().(type) {
		case int:
			fmt.Fprintf(b, "%s = %d", key, f)
			if strings.HasSuffix(key, "_bytes") {
				switch {
				case f > 0 && f%mib == 0:
					fmt.Fprintf(b, "  # %d MiB", f/mib)
				case f > 0 && f%kib == 0:
					fmt.Fprintf(b, "  # %d KiB", f/kib)
				}
			}
		case Duration:
			fmt.Fprintf(b, "%s = %v", key, f.Duration)
		case Rate:
			fmt.Fprintf(b, "%s = %v", key, f)
		default:
			panic(fmt.Sprintf("config: limits.%s has unexpected type %T", key, f))
		}
		b.WriteByte('\n')
	}
}

// Rate is a number of events per period, written in TOML as a string "N/s",
// "N/min" or "N/h", such as "100/s". N must be positive: no rate means
// "unlimited".
type Rate struct {
	// N is the number of events allowed per period, at least 1.
	N int
	// Per is the period: time.Second, time.Minute or time.Hour.
	Per time.Duration
}

// ratePeriods maps the units of a rate to their periods.
var ratePeriods = []struct {
	unit string
	per  time.Duration
}{
	{"s", time.Second},
	{"min", time.Minute},
	{"h", time.Hour},
}

// rateForm says how a rate is written, for error messages.
const rateForm = `write it like "100/s", "30/min" or "2/h"`

// PerSecond returns the rate in events per second, as a token bucket wants
// it; 0 for a Rate with no period.
func (r Rate) PerSecond() float64 {
	if r.Per <= 0 {
		return 0
	}
	return float64(r.N) / r.Per.Seconds()
}

// String formats r as "N/s", "N/min" or "N/h"; a period that is none of
// those is written as a duration, such as "5/2s".
func (r Rate) String() string {
	return strconv.Itoa(r.N) + "/" + periodName(r.Per)
}

// MarshalText formats r as String does; it fails for a rate that
// UnmarshalText would refuse.
func (r Rate) MarshalText() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	return []byte(r.String()), nil
}

// UnmarshalText parses "N/s", "N/min" or "N/h", N a positive decimal
// integer.
func (r *Rate) UnmarshalText(text []byte) error {
	s := string(text)
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		if _, err := strconv.Atoi(s); err == nil {
			return fmt.Errorf("rate %q has no period: write %q, %q or %q", s, s+"/s", s+"/min", s+"/h")
		}
		return fmt.Errorf("%q is not a rate: %s", s, rateForm)
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return fmt.Errorf("%q is not a rate: the count %q must be a positive whole number (%s)", s, num, rateForm)
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return fmt.Errorf("%q is not a rate: count %q is too large", s, num)
	}
	for _, p := range ratePeriods {
		if unit == p.unit {
			if n == 0 {
				return fmt.Errorf("rate %q must be positive: there is no unlimited rate", s)
			}
			*r = Rate{N: n, Per: p.per}
			return nil
		}
	}
	return fmt.Errorf("%q is not a rate: unknown period %q, use s, min or h", s, unit)
}

// UnmarshalTOML implements toml.Unmarshaler so that a value that is not a
// string gets a message saying how a rate is written; strings go through
// UnmarshalText.
func (r *Rate) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		return r.UnmarshalText([]byte(v))
	case int64:
		return fmt.Errorf("a bare integer (%d) is not a rate: write a string with a period, such as \"%d/s\"", v, v)
	default:
		return fmt.Errorf("a %T is not a rate: %s", v, rateForm)
	}
}

// check reports whether r is a rate a file could give: N positive and Per
// one of the periods of ratePeriods.
func (r Rate) check() error {
	if r.N <= 0 {
		return fmt.Errorf("must be positive (there is no unlimited rate), got %d/%s", r.N, periodName(r.Per))
	}
	for _, p := range ratePeriods {
		if r.Per == p.per {
			return nil
		}
	}
	return errors.New("period must be 1s, 1min or 1h, got " + r.Per.String())
}

// periodName returns the unit of per, or per as a duration if it is not one
// of the units.
func periodName(per time.Duration) string {
	for _, p := range ratePeriods {
		if per == p.per {
			return p.unit
		}
	}
	return per.String()
}
