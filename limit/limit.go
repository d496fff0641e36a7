// Package limit owns keyed rate limits: a token bucket per source address
// or per account, in bounded memory. The buckets are golang.org/x/time/rate
// limiters; this package adds the keying and the eviction.
package limit

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Keyed holds one token bucket per key. It is safe for concurrent use.
type Keyed struct {
	limit   rate.Limit
	burst   int
	maxKeys int
	refill  time.Duration // time for an empty bucket to fill up

	mu      sync.Mutex
	buckets map[string]*bucket
	sweepAt time.Time
}

type bucket struct {
	l    *rate.Limiter
	last time.Time // last use
}

// NewKeyed returns buckets of burst tokens refilled at perSecond, for at
// most maxKeys keys at once.
func NewKeyed(perSecond float64, burst, maxKeys int) *Keyed {
	if burst < 1 {
		burst = 1
	}
	refill := time.Duration(float64(burst) / perSecond * float64(time.Second))
	return &Keyed{
		limit:   rate.Limit(perSecond),
		burst:   burst,
		maxKeys: maxKeys,
		refill:  refill,
		buckets: make(map[string]*bucket),
	}
}

// Allow takes a token from key's bucket at now and reports whether there
// was one. When the table is full of keys that are all still limited, a
// new key is refused: the table never grows past maxKeys.
func (k *Keyed) Allow(key string, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.get(key, now)
	if b == nil {
		return false
	}
	return b.l.AllowN(now, 1)
}

// Has reports whether key's bucket holds a token at now, without taking
// it.
func (k *Keyed) Has(key string, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, ok := k.buckets[key]
	if !ok {
		return len(k.buckets) < k.maxKeys || k.sweep(now) > 0
	}
	return b.l.TokensAt(now) >= 1
}

// Take removes a token from key's bucket at now, going into debt if it is
// empty (so that failures keep counting while refused).
func (k *Keyed) Take(key string, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if b := k.get(key, now); b != nil {
		b.l.ReserveN(now, 1)
	}
}

// Len returns the number of keys held.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

// get returns key's bucket, creating it, or nil when the table is full.
func (k *Keyed) get(key string, now time.Time) *bucket {
	b, ok := k.buckets[key]
	if !ok {
		if now.After(k.sweepAt) || len(k.buckets) >= k.maxKeys {
			k.sweep(now)
		}
		if len(k.buckets) >= k.maxKeys {
			return nil
		}
		b = &bucket{l: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.last = now
	return b
}

// sweep drops the buckets that have been unused long enough to be full
// again: they hold no state a fresh bucket would not. It returns how many
// it dropped.
func (k *Keyed) sweep(now time.Time) int {
	n := 0
	for key, b := range k.buckets {
		if now.Sub(b.last) > k.refill {
			delete(k.buckets, key)
			n++
		}
	}
	k.sweepAt = now.Add(k.refill)
	return n
}

// AddressKey is the key for a source address: the address itself for
// IPv4, its /64 for IPv6 (one subscriber's prefix).
func AddressKey(addr netip.Addr) string {
	addr = addr.Unmap()
	if addr.Is6() {
		p, err := addr.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return addr.String()
}
