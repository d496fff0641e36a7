package proxy65

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Activation failures, which the XMPP side turns into stanza errors.
var (
	// errUnknown: no connection waits with this hash.
	errUnknown = errors.New("proxy65: no connection with this hash")
	// errOneSide: only one of the two parties is connected.
	errOneSide = errors.New("proxy65: only one party is connected")
	// errBusy: max_transfers transfers are relayed already, or
	// transfers_per_user of the initiator's.
	errBusy = errors.New("proxy65: too many transfers")
)

// relay is the SOCKS5 side of the proxy: it accepts connections, reads
// their handshake, pairs the two that name the same hash, and relays
// between them once the pair is activated. Nothing is read from a
// connection between its handshake and the activation but to notice
// that it closed: a byte that arrives before is a protocol violation
// (XEP-0065 §6.3.4: the initiator sends only after activation) and ends
// that connection.
type relay struct {
	opts   Options
	logger *slog.Logger
	total  *bandwidth // all transfers together
	done   chan struct{}

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener
	conns     map[*conn]struct{}
	perAddr   map[string]int
	pending   int // connections not in an activated transfer
	active    int // activated transfers
	pairs     map[string]*pair
	perUser   map[string]int // activated transfers by owner
	wg        sync.WaitGroup
}

// conn is one accepted connection.
type conn struct {
	net.Conn
	key    string // per-address key
	active bool   // part of an activated transfer; guarded by relay.mu
}

// pair is the two connections of one hash: [0] came first (the target,
// XEP-0065 §6.3.2), [1] second (the initiator).
type pair struct {
	hash      string
	owner     string // who activated it
	conns     [2]*conn
	activated bool
	finished  int           // directions done, guarded by relay.mu
	failed    bool          // a direction failed: both connections are closed
	ended     chan struct{} // closed when both directions ended
	bw        *bandwidth
	// last is when a byte was last relayed either way (Unix ns), for
	// the idle timeout.
	last atomic.Int64
}

func newRelay(opts Options, logger *slog.Logger) *relay {
	return &relay{
		opts:    opts,
		logger:  logger,
		total:   newBandwidth(opts.TotalBandwidth),
		done:    make(chan struct{}),
		conns:   make(map[*conn]struct{}),
		perAddr: make(map[string]int),
		pairs:   make(map[string]*pair),
		perUser: make(map[string]int),
	}
}

// add takes l in, to be served by accept; it fails when the relay is
// closed, and then closes l.
func (r *relay) add(l net.Listener) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		l.Close()
		return net.ErrClosed
	}
	r.listeners = append(r.listeners, l)
	r.wg.Add(1)
	return nil
}

// accept accepts connections on l, added before, until l or the relay
// is closed.
func (r *relay) accept(l net.Listener) error {
	defer r.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: do not spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			r.logger.Warn("accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-r.done:
				return net.ErrClosed
			}
			continue
		}
		backoff = 0
		if cc := r.admit(c); cc != nil {
			go r.serveConn(cc)
		}
	}
}

// admit counts c in, or closes it when the relay is closed, max_pending
// connections are pending or its address holds its share already.
func (r *relay) admit(c net.Conn) *conn {
	key := ""
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		key = r.opts.AddressKey(ap.Addr().Unmap())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
	case r.pending >= r.opts.MaxPending:
		r.logger.Debug("connection refused: too many pending", "remote", c.RemoteAddr().String())
	case r.perAddr[key] >= r.opts.ConnectionsPerAddress:
		r.logger.Debug("connection refused: too many from one address", "remote", c.RemoteAddr().String())
	default:
		cc := &conn{Conn: c, key: key}
		r.conns[cc] = struct{}{}
		r.perAddr[key]++
		r.pending++
		r.wg.Add(1)
		return cc
	}
	c.Close()
	return nil
}

// release closes c and uncounts it.
func (r *relay) release(c *conn) {
	c.Close()
	r.mu.Lock()
	delete(r.conns, c)
	if r.perAddr[c.key]--; r.perAddr[c.key] <= 0 {
		delete(r.perAddr, c.key)
	}
	if !c.active {
		r.pending--
	}
	r.mu.Unlock()
	r.wg.Done()
}

// serveConn runs one connection: handshake, waiting for its peer and the
// activation within PendingTimeout of its accept, then its direction of
// the relay.
func (r *relay) serveConn(c *conn) {
	defer r.release(c)
	c.SetDeadline(time.Now().Add(r.opts.PendingTimeout))
	hash, err := readRequest(c)
	if err != nil {
		r.logger.Debug("SOCKS5 handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	p, slot := r.join(hash, c)
	if p == nil {
		// A third connection with this hash: a guess, or a replay.
		writeReply(c, replyNotAllowed, "")
		r.logger.Debug("connection refused: its hash has two connections", "remote", c.RemoteAddr().String())
		return
	}
	if err := writeReply(c, replySucceeded, hash); err != nil {
		if !r.leave(p, slot) {
			r.finish(p, false) // activated meanwhile: end it
		}
		return
	}
	// Wait, reading one byte: an activation sets the read deadline to
	// now, which ends this read; so does the pending deadline; a byte or
	// the end of the connection ends it too.
	var one [1]byte
	n, err := c.Read(one[:])
	if r.leave(p, slot) {
		switch {
		case n > 0:
			r.logger.Debug("bytes before activation: connection closed", "remote", c.RemoteAddr().String())
		case errors.Is(err, io.EOF):
		default:
			r.logger.Debug("not activated in time", "remote", c.RemoteAddr().String(), "err", err)
		}
		return
	}
	// Activated: what was read (if anything) came after the activation.
	r.pipe(p, slot, one[:n])
}

// join adds c to the pair of hash and returns the pair and c's slot, or
// nil when the pair has two connections already.
func (r *relay) join(hash string, c *conn) (*pair, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pairs[hash]
	if p == nil {
		p = &pair{hash: hash}
		r.pairs[hash] = p
	}
	for i := range p.conns {
		if p.conns[i] == nil {
			p.conns[i] = c
			return p, i
		}
	}
	return nil, 0
}

// leave takes the connection in slot out of its pair and reports true,
// unless the pair is activated: then the connection is part of a
// transfer, which must end with finish.
func (r *relay) leave(p *pair, slot int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.activated {
		return false
	}
	p.conns[slot] = nil
	if p.conns[0] == nil && p.conns[1] == nil && r.pairs[p.hash] == p {
		delete(r.pairs, p.hash)
	}
	return true
}

// activate starts relaying between the two connections of hash, a
// transfer of owner (the initiator's bare JID).
func (r *relay) activate(hash, owner string) error {
	r.mu.Lock()
	p := r.pairs[hash]
	switch {
	case p == nil:
		r.mu.Unlock()
		return errUnknown
	case p.conns[0] == nil || p.conns[1] == nil:
		r.mu.Unlock()
		return errOneSide
	case r.active >= r.opts.MaxTransfers || r.perUser[owner] >= r.opts.TransfersPerUser:
		r.mu.Unlock()
		return errBusy
	}
	p.activated = true
	p.owner = owner
	delete(r.pairs, hash)
	r.active++
	r.perUser[owner]++
	r.pending -= 2
	p.bw = newBandwidth(r.opts.TransferBandwidth)
	p.ended = make(chan struct{})
	p.last.Store(time.Now().UnixNano())
	for _, c := range p.conns {
		c.active = true
	}
	r.mu.Unlock()
	// Wake both waiting reads.
	for _, c := range p.conns {
		c.SetReadDeadline(time.Now())
	}
	return nil
}

// pipe relays what the connection in slot sends to its peer, first the
// bytes already read, within the bandwidth limits, until it ends; then
// it half-closes the peer so that the other side sees the end too. A
// failure either way, or IdleTimeout with nothing relayed either way,
// closes both.
func (r *relay) pipe(p *pair, slot int, first []byte) {
	src, dst := p.conns[slot], p.conns[1-slot]
	buf := make([]byte, chunkSize(r.opts.TransferBandwidth))
	n := copy(buf, first)
	ok := true
	for ok {
		if n > 0 {
			if !r.wait(p, n) {
				ok = false
				break
			}
			dst.SetWriteDeadline(time.Now().Add(r.opts.IdleTimeout))
			if _, err := dst.Write(buf[:n]); err != nil {
				ok = false
				break
			}
			p.last.Store(time.Now().UnixNano())
		}
		src.SetReadDeadline(time.Now().Add(r.opts.IdleTimeout))
		var err error
		n, err = src.Read(buf)
		if n > 0 {
			p.last.Store(time.Now().UnixNano())
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			if n > 0 {
				continue // relay the last bytes, then read the EOF again
			}
			if cw, canHalfClose := dst.Conn.(interface{ CloseWrite() error }); !canHalfClose || cw.CloseWrite() != nil {
				ok = false
			}
			r.finish(p, ok)
			return
		case isTimeout(err) && n == 0 && time.Since(time.Unix(0, p.last.Load())) < r.opts.IdleTimeout:
			// The other direction is busy: still alive.
		default:
			ok = false
		}
	}
	r.finish(p, ok)
}

// finish records that one direction of p ended; a failure, or the end
// of both, closes both connections and frees the transfer's place. It
// returns when both directions ended, so that each connection is
// counted until it is closed.
func (r *relay) finish(p *pair, ok bool) {
	r.mu.Lock()
	p.finished++
	last := p.finished == 2
	if !ok {
		p.failed = true
	}
	closeBoth := p.failed || last
	if last {
		r.active--
		if r.perUser[p.owner]--; r.perUser[p.owner] <= 0 {
			delete(r.perUser, p.owner)
		}
	}
	r.mu.Unlock()
	if closeBoth {
		for _, c := range p.conns {
			c.Close()
		}
	}
	if last {
		close(p.ended)
	}
	<-p.ended
}

// wait waits until n more bytes may be relayed for p, under its own and
// the total bandwidth; false when the relay is closing.
func (r *relay) wait(p *pair, n int) bool {
	now := time.Now()
	d := max(p.bw.reserve(n, now), r.total.reserve(n, now))
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.done:
		return false
	}
}

// close closes the listeners and every connection, and waits for their
// goroutines.
func (r *relay) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.wg.Wait()
		return
	}
	r.closed = true
	close(r.done)
	for _, l := range r.listeners {
		l.Close()
	}
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// counts returns the connections pending and the transfers activated.
func (r *relay) counts() (pending, active int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending, r.active
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// chunkSize is the read buffer of one direction: about a sixteenth of a
// second at rate, 1 to 32 KiB, so that the limiter's waits stay short.
func chunkSize(rate int) int {
	return min(max(rate/16, 1<<10), 32<<10)
}

// bandwidth spaces out reservations so that they add up to at most rate
// bytes per second: each reservation is scheduled after the previous
// one ends, and unused time is not saved up.
type bandwidth struct {
	mu      sync.Mutex
	perByte float64 // nanoseconds per byte
	next    time.Time
}

func newBandwidth(rate int) *bandwidth {
	return &bandwidth{perByte: float64(time.Second) / float64(rate)}
}

// reserve books n bytes and returns how long to wait before sending
// them.
func (b *bandwidth) reserve(n int, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next.Before(now) {
		b.next = now
	}
	wait := b.next.Sub(now)
	b.next = b.next.Add(time.Duration(float64(n) * b.perByte))
	return wait
}
