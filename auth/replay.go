package auth

import (
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ReplayKey identifies one accepted token of one JID: a hash of the JID,
// OTP and nonce, so every entry has the same small size whatever the token.
type ReplayKey [16]byte

// ReplayCache remembers accepted tokens. A cache shared by several server
// nodes satisfies the same interface.
type ReplayCache interface {
	// Claim records key as used until expires and reports whether it was
	// unused. It returns an error, and records nothing, when it cannot
	// remember the key (for example when full): the token must then be
	// refused, never accepted unremembered.
	Claim(ctx context.Context, key ReplayKey, expires, now time.Time) (fresh bool, err error)
}

// ClaimStore is durable memory of accepted tokens, so that a token used
// once is refused after a restart too. ottr's claim log (storage/claimlog)
// implements it; a store shared by several server nodes could as well.
type ClaimStore interface {
	// ClaimToken records key as used until expires and reports whether it
	// was unused (absent, or recorded with an expiry at or before now).
	// A nil error means the claim survives a restart or crash of the
	// process (the store documents what it keeps across a power loss).
	// On error nothing may be assumed recorded: the token is refused.
	ClaimToken(ctx context.Context, key [16]byte, expires, now time.Time) (fresh bool, err error)
}

// DurableReplayCache is a MemoryReplayCache in front of a ClaimStore: a
// replay within this process is refused from memory, and a token the
// memory has not seen is claimed in the store, which remembers it across
// restarts. The memory cache bounds the store's live claims: a token it
// refuses (full) never reaches the store.
type DurableReplayCache struct {
	mem   *MemoryReplayCache
	store ClaimStore
}

// NewDurableReplayCache returns mem in front of store.
func NewDurableReplayCache(mem *MemoryReplayCache, store ClaimStore) *DurableReplayCache {
	return &DurableReplayCache{mem: mem, store: store}
}

// Claim implements ReplayCache.
func (c *DurableReplayCache) Claim(ctx context.Context, key ReplayKey, expires, now time.Time) (bool, error) {
	fresh, err := c.mem.Claim(ctx, key, expires, now)
	if err != nil || !fresh {
		return fresh, err
	}
	fresh, err = c.store.ClaimToken(ctx, key, expires, now)
	if err != nil {
		// Not durably claimed: the token is refused, and forgetting it
		// here lets the client retry it once the store works again.
		c.mem.forget(key)
		return false, fmt.Errorf("auth: storing a token claim: %w", err)
	}
	return fresh, nil
}

// ErrReplayCacheFull is returned by MemoryReplayCache.Claim when it holds
// its maximum number of unexpired entries.
var ErrReplayCacheFull = errors.New("auth: replay cache full")

const replayShards = 32

// MemoryReplayCache is an in-process ReplayCache. Entries leave the cache
// when they expire, so its size is bounded by the login rate times the
// token lifetime, and never exceeds the maximum given to
// NewMemoryReplayCache.
type MemoryReplayCache struct {
	shards [replayShards]replayShard
}

type replayShard struct {
	mu      sync.Mutex
	max     int
	entries map[ReplayKey]int64 // key -> expiry, unix nanoseconds
	byTime  expiryHeap
}

// NewMemoryReplayCache returns a cache holding at most max unexpired
// entries (at least one per shard).
func NewMemoryReplayCache(max int) *MemoryReplayCache {
	c := &MemoryReplayCache{}
	per := max / replayShards
	if per < 1 {
		per = 1
	}
	for i := range c.shards {
		c.shards[i].max = per
		c.shards[i].entries = make(map[ReplayKey]int64)
	}
	return c
}

// Claim implements ReplayCache.
func (c *MemoryReplayCache) Claim(_ context.Context, key ReplayKey, expires, now time.Time) (bool, error) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(now.UnixNano())
	if _, used := s.entries[key]; used {
		return false, nil
	}
	if len(s.entries) >= s.max || len(s.byTime) >= 2*s.max {
		// The heap may also hold forgotten claims (see forget): bound it too.
		return false, ErrReplayCacheFull
	}
	exp := expires.UnixNano()
	s.entries[key] = exp
	heap.Push(&s.byTime, expiryEntry{at: exp, key: key})
	return true, nil
}

func (c *MemoryReplayCache) shard(key ReplayKey) *replayShard {
	return &c.shards[binary.LittleEndian.Uint32(key[:4])%replayShards]
}

// forget removes key, which was just claimed; its heap entry stays until
// it expires (and then deletes nothing, or a later claim of the same key
// that expires no sooner).
func (c *MemoryReplayCache) forget(key ReplayKey) {
	s := c.shard(key)
	s.mu.Lock()
	delete(s.entries, key)
	s.mu.Unlock()
}

// Len returns the number of unexpired entries at now.
func (c *MemoryReplayCache) Len(now time.Time) int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.prune(now.UnixNano())
		n += len(s.entries)
		s.mu.Unlock()
	}
	return n
}

// prune drops every entry whose expiry is at or before now.
func (s *replayShard) prune(now int64) {
	for len(s.byTime) > 0 && s.byTime[0].at <= now {
		e := heap.Pop(&s.byTime).(expiryEntry)
		if at, ok := s.entries[e.key]; ok && at <= now {
			delete(s.entries, e.key)
		}
	}
}

type expiryEntry struct {
	at  int64
	key ReplayKey
}

// expiryHeap is a min-heap of entries by expiry.
type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
