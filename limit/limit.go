// Package limit owns keyed rate limits: a token bucket per source address,
// per account or per pair of them, in bounded memory.
//
// A table never refuses a key because it is full: when it holds its maximum
// number of keys, the least recently used one is forgotten (its bucket
// starts full again the next time). Filling a table therefore costs an
// attacker the memory bound and nothing else: it can make the table forget
// limits, never make it refuse someone it has not limited. Every entry has
// the same small size whatever the key, because keys are stored as a
// 64-bit seeded hash.
package limit

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Keyed holds one token bucket per key. It is safe for concurrent use.
type Keyed struct {
	rate    float64 // tokens per nanosecond
	burst   float64
	maxKeys int
	seed    maphash.Seed

	mu      sync.Mutex
	buckets map[uint64]*bucket
	lru     bucket // sentinel: lru.next is the most recently used

	refused atomic.Pointer[func()] // see OnRefuse
}

// bucket is one key's tokens, linked into the table's LRU list.
type bucket struct {
	key        uint64
	tokens     float64 // may be negative: debt
	at         int64   // unix nanoseconds of the last refill
	prev, next *bucket
}

// NewKeyed returns buckets of burst tokens refilled at perSecond, for at
// most maxKeys keys at once (at least 1). A perSecond of 0 or less never
// refills.
func NewKeyed(perSecond float64, burst, maxKeys int) *Keyed {
	if burst < 1 {
		burst = 1
	}
	if maxKeys < 1 {
		maxKeys = 1
	}
	if perSecond < 0 {
		perSecond = 0
	}
	k := &Keyed{
		rate:    perSecond / float64(time.Second),
		burst:   float64(burst),
		maxKeys: maxKeys,
		seed:    maphash.MakeSeed(),
		buckets: make(map[uint64]*bucket),
	}
	k.lru.next, k.lru.prev = &k.lru, &k.lru
	return k
}

// Allow takes a token from key's bucket at now and reports whether there
// was one; an empty bucket stays empty (no debt).
func (k *Keyed) Allow(key string, now time.Time) bool {
	k.mu.Lock()
	b := k.get(key, now)
	ok := b.tokens >= 1
	if ok {
		b.tokens--
	}
	k.mu.Unlock()
	if !ok {
		k.refuse()
	}
	return ok
}

// Has reports whether key's bucket holds a token at now, without taking
// it. A key the table does not hold has a full bucket.
func (k *Keyed) Has(key string, now time.Time) bool {
	k.mu.Lock()
	b, ok := k.buckets[k.hash(key)]
	has := !ok || k.level(b, now.UnixNano()) >= 1
	k.mu.Unlock()
	if !has {
		k.refuse()
	}
	return has
}

// OnRefuse sets f to be called each time Allow or Has answers false (for
// metrics), outside the table's lock; nil calls nothing. f must not
// block.
func (k *Keyed) OnRefuse(f func()) {
	if f == nil {
		k.refused.Store(nil)
		return
	}
	k.refused.Store(&f)
}

func (k *Keyed) refuse() {
	if f := k.refused.Load(); f != nil {
		(*f)()
	}
}

// SetRate changes the refill rate and the size of every bucket, as a
// configuration reload does (the same bounds as NewKeyed's). Buckets
// keep their tokens, refilled from now on at the new rate and capped at
// the new size.
func (k *Keyed) SetRate(perSecond float64, burst int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rate = max(perSecond, 0) / float64(time.Second)
	k.burst = float64(max(burst, 1))
	for b := k.lru.next; b != &k.lru; b = b.next {
		b.tokens = min(b.tokens, k.burst)
	}
}

// Take removes a token from key's bucket at now, going into debt if it is
// empty (so that failures keep counting while refused).
func (k *Keyed) Take(key string, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.get(key, now).tokens--
}

// Len returns the number of keys held.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

func (k *Keyed) hash(key string) uint64 { return maphash.String(k.seed, key) }

// level returns b's tokens at now (refilled, capped at the burst) without
// changing b.
func (k *Keyed) level(b *bucket, now int64) float64 {
	t := b.tokens
	if d := now - b.at; d > 0 {
		t += float64(d) * k.rate
	}
	return min(t, k.burst)
}

// get returns key's bucket refilled to now and marked most recently used,
// creating it full. Before creating, it drops the least recently used
// buckets that are full again (they hold nothing a fresh bucket would
// not), and when the table is still full, the least recently used one
// whatever its level.
func (k *Keyed) get(key string, now time.Time) *bucket {
	h := k.hash(key)
	ns := now.UnixNano()
	b, ok := k.buckets[h]
	if ok {
		b.tokens = k.level(b, ns)
		if ns > b.at {
			b.at = ns
		}
		k.unlink(b)
		k.pushFront(b)
		return b
	}
	for tail := k.lru.prev; tail != &k.lru && k.level(tail, ns) >= k.burst; tail = k.lru.prev {
		k.drop(tail)
	}
	if len(k.buckets) >= k.maxKeys {
		k.drop(k.lru.prev)
	}
	b = &bucket{key: h, tokens: k.burst, at: ns}
	k.buckets[h] = b
	k.pushFront(b)
	return b
}

func (k *Keyed) drop(b *bucket) {
	k.unlink(b)
	delete(k.buckets, b.key)
}

func (k *Keyed) unlink(b *bucket) {
	b.prev.next = b.next
	b.next.prev = b.prev
	b.prev, b.next = nil, nil
}

func (k *Keyed) pushFront(b *bucket) {
	b.prev = &k.lru
	b.next = k.lru.next
	k.lru.next.prev = b
	k.lru.next = b
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
