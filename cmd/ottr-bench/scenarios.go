package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// bench runs scenarios against one target.
type bench struct {
	t        *target
	pids     []int
	progress time.Duration
	log      io.Writer // progress and diagnostics (stderr)
	settle   time.Duration
	// maxErrors: a scenario stops starting operations past this many
	// failures.
	maxErrors int64
	// ctx ends a run early (SIGINT); a run still reports what it measured.
	ctx context.Context
}

// parallel runs fn(i) for i in [0, n) on workers goroutines until all
// are done, ctx ends or stop (if not nil) says so, and returns how many
// were never started.
func parallel(ctx context.Context, workers, n int, stop func() bool, fn func(i int)) (skipped int) {
	var next, started atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && (stop == nil || !stop()) {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				started.Add(1)
				fn(i)
			}
		}()
	}
	wg.Wait()
	return n - int(started.Load())
}

// tooMany reports whether errs has passed the -max-errors bound, after
// which a scenario stops starting operations (a server that refuses
// would otherwise keep a run going for N × -op-timeout / C).
func (b *bench) tooMany(errs *errCounts) func() bool {
	return func() bool { return errs.n.Load() > b.maxErrors }
}

// skipped counts the operations a run never started.
func skipped(errs *errCounts, n int) {
	errs.addKind("not-started", int64(n))
}

// sleep waits d or until the run is interrupted.
func (b *bench) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-b.ctx.Done():
	}
}

func (b *bench) summary(scenario string, params map[string]any) *Summary {
	return &Summary{
		Scenario: scenario,
		Addr:     b.t.addr,
		Host:     b.t.host,
		Mech:     b.t.mech,
		TLS:      map[bool]string{false: "starttls", true: "direct"}[b.t.direct],
		PIDs:     b.pids,
		Started:  time.Now().UTC().Format(time.RFC3339),
		Params:   params,
		Errors:   map[string]int64{},
	}
}

// preflight logs in once so that an unreachable server or wrong
// credentials fail at once with the reason.
func (b *bench) preflight() error {
	c, err := b.t.login(b.t.user(0), "preflight", false)
	if err != nil {
		return fmt.Errorf("cannot log in to %s as %s@%s with %s: %w", b.t.addr, b.t.user(0), b.t.host, b.t.mech, err)
	}
	c.close()
	return nil
}

type loginOpts struct {
	n, workers, users, warmup int
}

// login measures full logins: C workers each repeat connect, STARTTLS,
// SASL, bind and close until N are done.
func (b *bench) login(o loginOpts) (*Summary, error) {
	s := b.summary("login", map[string]any{"n": o.n, "workers": o.workers, "users": o.users, "warmup": o.warmup})
	if err := b.preflight(); err != nil {
		return nil, err
	}
	one := func(i int, res string) (time.Duration, error) {
		start := time.Now()
		c, err := b.t.login(b.t.user(i%o.users), res+strconv.Itoa(i), false)
		if err != nil {
			return 0, err
		}
		c.close()
		return time.Since(start), nil
	}
	if o.warmup > 0 {
		parallel(b.ctx, o.workers, o.warmup, nil, func(i int) { one(i, "w") })
	}

	errs := newErrCounts()
	var done atomic.Int64
	lats := make([]time.Duration, o.n) // one slot per login, 0 if it failed
	m, err := startMeter(b.pids)
	if err != nil {
		return nil, err
	}
	stop := progress(b.log, b.progress, "login", int64(o.n), &done, errs)
	n := parallel(b.ctx, o.workers, o.n, b.tooMany(errs), func(i int) {
		d, err := one(i, "l")
		if err != nil {
			errs.add(err)
		} else {
			lats[i] = d
		}
		done.Add(1)
	})
	skipped(errs, n)
	wall := time.Since(m.wall)
	stop()
	b.sleep(b.settle) // the server's work for the last logins
	server, own, err := m.stop()
	if err != nil {
		return nil, err
	}
	all := lats[:0]
	for _, d := range lats {
		if d > 0 {
			all = append(all, d)
		}
	}
	s.Ops = int64(len(all))
	s.Errors = errs.snapshot()
	errs.report(b.log)
	s.Seconds = round(wall.Seconds())
	s.OpsPerS = round(float64(s.Ops) / wall.Seconds())
	s.Latency = latencies(all)
	s.fillCPU(server, own)
	return s, nil
}

// connect logs in n sessions with initial presence on workers goroutines,
// user(first+i) with resource res; failed ones are nil and counted.
func (b *bench) connect(n, first, workers int, res string, errs *errCounts, done *atomic.Int64) []*client {
	cs := make([]*client, n)
	skipped(errs, parallel(b.ctx, workers, n, b.tooMany(errs), func(i int) {
		c, err := b.t.login(b.t.user(first+i), res, true)
		if err != nil {
			errs.add(err)
		} else {
			cs[i] = c
		}
		if done != nil {
			done.Add(1)
		}
	}))
	return cs
}

func closeAll(cs []*client) {
	for _, c := range cs {
		if c != nil {
			c.close()
		}
	}
}

type msgOpts struct {
	pairs, m, window, workers int
	rate                      float64       // messages/s offered in total; 0: as fast as the windows allow
	limit                     time.Duration // the measured phase ends by then
}

var (
	mBody    = []byte("<body") // ottr writes <body xmlns='jabber:client'>
	mBodyEnd = []byte("</body>")
	mMessage = []byte("<message")
	mTagEnd  = []byte(">")
)

// msg measures message delivery: P pairs logged in first (not measured),
// each sender keeps up to W messages in flight to its peer, M in total.
// The body carries the send time for the end-to-end latency.
func (b *bench) msg(o msgOpts) (*Summary, error) {
	s := b.summary("msg", map[string]any{"pairs": o.pairs, "m": o.m, "window": o.window, "rate": o.rate, "limit_s": o.limit.Seconds()})
	if err := b.preflight(); err != nil {
		return nil, err
	}
	setupErrs := newErrCounts()
	senders := b.connect(o.pairs, 0, o.workers, "s", setupErrs, nil)
	receivers := make([]*client, o.pairs)
	defer func() { closeAll(senders); closeAll(receivers) }()
	copy(receivers, b.connect(o.pairs, o.pairs, o.workers, "r", setupErrs, nil))
	if n := setupErrs.n.Load(); n > 0 {
		setupErrs.report(b.log)
		return nil, fmt.Errorf("msg: %d of %d sessions failed to log in", n, 2*o.pairs)
	}

	epoch := time.Now()
	now := func() int64 { return int64(time.Since(epoch)) }
	errs := newErrCounts()
	var delivered, bounced atomic.Int64
	finished := make(chan struct{})
	var finishOnce sync.Once
	count := func(c *atomic.Int64) {
		c.Add(1)
		if delivered.Load()+bounced.Load() >= int64(o.m) {
			finishOnce.Do(func() { close(finished) })
		}
	}
	abort := make(chan struct{})
	lats := make([][]time.Duration, o.pairs)
	var wg sync.WaitGroup

	m, err := startMeter(b.pids)
	if err != nil {
		return nil, err
	}
	stop := progress(b.log, b.progress, "msg", int64(o.m), &delivered, errs)
	start := time.Now()
	for p := range o.pairs {
		want := o.m / o.pairs
		if p < o.m%o.pairs {
			want++
		}
		if want == 0 {
			continue
		}
		win := make(chan struct{}, o.window)
		snd, rcv := senders[p], receivers[p]
		lats[p] = make([]time.Duration, 0, want)
		wg.Add(3)
		go func() { // receiver
			defer wg.Done()
			for range want {
				if _, err := rcv.sc.until(mBody); err != nil {
					if !isClosing(abort) {
						errs.add(classify("receive", err))
					}
					return
				}
				_, err := rcv.sc.capture(mTagEnd)
				var body []byte
				if err == nil {
					body, err = rcv.sc.capture(mBodyEnd)
				}
				if err != nil {
					if !isClosing(abort) {
						errs.add(classify("receive", err))
					}
					return
				}
				ts, ok := bodyTime(body)
				if !ok {
					errs.addKind("receive:bad-body", 1)
				} else {
					lats[p] = append(lats[p], time.Duration(now()-ts))
				}
				count(&delivered)
				select {
				case <-win:
				default:
				}
			}
		}()
		go func() { // bounces: a message coming back to the sender is an error
			defer wg.Done()
			for {
				if _, err := snd.sc.until(mMessage); err != nil {
					return // closed at the end
				}
				errs.addKind("bounced", 1)
				count(&bounced)
				select {
				case <-win:
				default:
				}
			}
		}()
		go func() { // sender
			defer wg.Done()
			var interval time.Duration
			if o.rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(o.pairs) / o.rate)
			}
			// Spread the pairs' schedules over one interval.
			offset := interval * time.Duration(p) / time.Duration(o.pairs)
			var buf []byte
			for k := range want {
				select {
				case win <- struct{}{}:
				case <-abort:
					return
				}
				var ts int64
				if interval > 0 {
					// The scheduled time, not the actual one, so that a
					// server falling behind shows in the latency.
					ts = int64(start.Sub(epoch) + offset + time.Duration(k)*interval)
					if d := time.Duration(ts - now()); d > 0 {
						time.Sleep(d)
					}
				} else {
					ts = now()
				}
				buf = appendMessage(buf[:0], rcv.jid, k, ts)
				if err := snd.write(buf); err != nil {
					if !isClosing(abort) {
						errs.add(classify("send", err))
					}
					return
				}
			}
		}()
	}
	timeout := time.NewTimer(o.limit)
	defer timeout.Stop()
	select {
	case <-finished:
	case <-timeout.C:
		fmt.Fprintf(b.log, "ottr-bench: msg: time limit %v reached\n", o.limit)
	case <-b.ctx.Done():
	}
	wall := time.Since(start)
	stop()
	b.sleep(b.settle)
	server, own, err := m.stop()
	close(abort)
	closeAll(senders)
	closeAll(receivers)
	senders, receivers = nil, nil
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if lost := int64(o.m) - delivered.Load() - bounced.Load(); lost > 0 {
		errs.addKind("not-delivered", lost)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	s.Ops = delivered.Load()
	s.Errors = errs.snapshot()
	errs.report(b.log)
	s.Seconds = round(wall.Seconds())
	s.OpsPerS = round(float64(s.Ops) / wall.Seconds())
	s.OfferedS = o.rate
	s.Latency = latencies(all)
	s.fillCPU(server, own)
	return s, nil
}

func isClosing(abort chan struct{}) bool {
	select {
	case <-abort:
		return true
	default:
		return false
	}
}

// appendMessage appends the message stanza k to `to` whose body is
// "k ts" (ts: nanoseconds since the run's epoch).
func appendMessage(b []byte, to string, k int, ts int64) []byte {
	b = append(b, "<message type='chat' to='"...)
	b = append(b, to...)
	b = append(b, "' id='m"...)
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, "'><body>"...)
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, ts, 10)
	return append(b, "</body></message>"...)
}

// bodyTime returns the timestamp in a body written by appendMessage.
func bodyTime(body []byte) (int64, bool) {
	i := bytes.IndexByte(body, ' ')
	if i < 0 {
		return 0, false
	}
	ts, err := strconv.ParseInt(string(body[i+1:]), 10, 64)
	return ts, err == nil
}

type idleOpts struct {
	k, workers int
	hold       time.Duration
	keepalive  time.Duration
}

// idle logs in K sessions with initial presence, waits for the server to
// settle and reports its resident set growth per session; the summary is
// written before the sessions are held open for -hold.
func (b *bench) idle(o idleOpts, out io.Writer) (*Summary, error) {
	s := b.summary("idle", map[string]any{"k": o.k, "workers": o.workers, "settle_s": b.settle.Seconds(), "hold_s": o.hold.Seconds()})
	if len(b.pids) == 0 {
		return nil, errors.New("idle: -pid is required (the server's resident set is the figure)")
	}
	if err := b.preflight(); err != nil {
		return nil, err
	}
	b.sleep(b.settle)
	before, err := procRSS(b.pids)
	if err != nil {
		return nil, err
	}
	errs := newErrCounts()
	var done atomic.Int64
	m, err := startMeter(b.pids)
	if err != nil {
		return nil, err
	}
	stop := progress(b.log, b.progress, "idle", int64(o.k), &done, errs)
	cs := b.connect(o.k, 0, o.workers, "idle", errs, &done)
	defer closeAll(cs)
	wall := time.Since(m.wall)
	stop()
	b.sleep(b.settle)
	server, own, err := m.stop()
	if err != nil {
		return nil, err
	}
	after, err := procRSS(b.pids)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if c != nil {
			s.Ops++
		}
	}
	s.Errors = errs.snapshot()
	errs.report(b.log)
	s.Seconds = round(wall.Seconds())
	s.OpsPerS = round(float64(s.Ops) / wall.Seconds())
	s.fillCPU(server, own)
	s.RSSBeforeKiB, s.RSSAfterKiB = before, after
	if s.Ops > 0 {
		s.RSSPerSessionKiB = round(float64(after-before) / float64(s.Ops))
	}
	if err := s.write(out); err != nil {
		return nil, err
	}
	if o.hold > 0 {
		fmt.Fprintf(b.log, "idle: holding %d sessions for %v\n", s.Ops, o.hold)
		b.hold(cs, o.hold, o.keepalive)
	}
	return s, nil
}

// hold keeps sessions open for d (or until the run is interrupted),
// sending a whitespace keepalive on each every keepalive.
func (b *bench) hold(cs []*client, d, keepalive time.Duration) {
	end := time.NewTimer(d)
	defer end.Stop()
	tick := time.NewTicker(keepalive)
	defer tick.Stop()
	for {
		select {
		case <-end.C:
			return
		case <-b.ctx.Done():
			return
		case <-tick.C:
			for _, c := range cs {
				if c != nil {
					c.conn.SetWriteDeadline(time.Now().Add(time.Second))
					c.conn.Write([]byte{' '})
				}
			}
		}
	}
}

type registerOpts struct {
	n, workers int
}

// register creates accounts prefix0…prefixN-1 with the password by
// in-band registration (XEP-0077), for servers that allow it (Prosody,
// ejabberd); an existing account counts as done.
func (b *bench) register(o registerOpts) (*Summary, error) {
	s := b.summary("register", map[string]any{"n": o.n, "workers": o.workers})
	errs := newErrCounts()
	var done, existed atomic.Int64
	m, err := startMeter(b.pids)
	if err != nil {
		return nil, err
	}
	stop := progress(b.log, b.progress, "register", int64(o.n), &done, errs)
	n := parallel(b.ctx, o.workers, o.n, b.tooMany(errs), func(i int) {
		defer done.Add(1)
		c, err := b.t.dial()
		if err != nil {
			errs.add(err)
			return
		}
		defer c.close()
		err = c.writeString("<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>" +
			b.t.user(i) + "</username><password>" + xmlEscape(b.t.password) + "</password></query></iq>")
		if err == nil {
			err = c.sc.iqResult("reg1")
		}
		switch {
		case err == nil:
		case strings.HasSuffix(err.Error(), ": conflict"):
			existed.Add(1)
		default:
			errs.add(classify("register", err))
		}
	})
	wall := time.Since(m.wall)
	stop()
	server, own, err := m.stop()
	if err != nil {
		return nil, err
	}
	s.Ops = done.Load() - errs.n.Load()
	skipped(errs, n)
	s.Params["existed"] = existed.Load()
	s.Errors = errs.snapshot()
	errs.report(b.log)
	s.Seconds = round(wall.Seconds())
	s.OpsPerS = round(float64(s.Ops) / wall.Seconds())
	s.fillCPU(server, own)
	return s, nil
}

func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\'':
			b.WriteString("&apos;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
