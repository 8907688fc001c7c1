package ingress

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock only the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

// takes takes n tokens at one instant and says which it got.
func takes(b *tokenBucket, n int) (got []bool) {
	for range n {
		got = append(got, b.take())
	}
	return got
}

func TestTokenBucket(t *testing.T) {
	clock := newFakeClock()
	b := newTokenBucket(2, clock.now)
	// A full burst of 2, then nothing until time passes.
	if got := takes(b, 3); fmt.Sprint(got) != "[true true false]" {
		t.Fatalf("a burst at one instant: %v, want the burst of 2 then a refusal", got)
	}
	clock.add(250 * time.Millisecond) // half a token
	if b.take() {
		t.Fatal("a token after 250ms at 2/s")
	}
	clock.add(250 * time.Millisecond) // the half plus another half
	if got := takes(b, 2); fmt.Sprint(got) != "[true false]" {
		t.Fatalf("after 500ms at 2/s: %v, want one token", got)
	}
	// An idle minute refills to the burst, no further.
	clock.add(time.Minute)
	if got := takes(b, 3); fmt.Sprint(got) != "[true true false]" {
		t.Fatalf("after a minute: %v, want the burst of 2 only", got)
	}
	// A clock that steps back grants nothing and takes nothing away.
	clock.add(-time.Hour)
	if b.take() {
		t.Fatal("a token from a clock that went back")
	}
	clock.add(time.Hour + time.Second)
	if got := takes(b, 3); fmt.Sprint(got) != "[true true false]" {
		t.Fatalf("after the clock came back: %v", got)
	}

	// A rate of 0 never explains.
	never := newTokenBucket(0, clock.now)
	clock.add(time.Hour)
	if never.take() {
		t.Fatal("a bucket of rate 0 granted a token")
	}
}

func TestExplainRate(t *testing.T) {
	for in, want := range map[int]int{0: DefaultMaxExplainedPerSecond, ExplainNever: 0, -7: 0, 1: 1, 300: 300} {
		if got := explainRate(in); got != want {
			t.Errorf("explainRate(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestLogLimiter(t *testing.T) {
	clock := newFakeClock()
	var l logLimiter
	a, b := logKey{source: netip.MustParseAddr("192.0.2.1")}, logKey{endpoint: "vpce-1"}
	step := func(key logKey, wantOK bool, wantSuppressed int) {
		t.Helper()
		if ok, n := l.allow(key, clock.now()); ok != wantOK || n != wantSuppressed {
			t.Fatalf("allow(%v) at +%v = %v, %d; want %v, %d", key, clock.t.Sub(time.Unix(1_700_000_000, 0)), ok, n, wantOK, wantSuppressed)
		}
	}
	step(a, true, 0)
	step(a, false, 0)
	step(b, true, 0) // another key has its own second
	clock.add(500 * time.Millisecond)
	step(a, false, 0)
	step(a, false, 0)
	clock.add(500 * time.Millisecond)
	step(a, true, 3) // a second after the last line: says how many were left out
	step(a, false, 0)
	clock.add(1500 * time.Millisecond)
	step(a, true, 1)

	// Memory stays bounded: a flood of new keys within one second shares
	// one entry past maxLogKeys, and the next second prunes them.
	clock.add(2 * time.Second)
	allowed := 0
	for i := range 3 * maxLogKeys {
		key := logKey{source: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}
		if ok, _ := l.allow(key, clock.now()); ok {
			allowed++
		}
	}
	if len(l.entries) > maxLogKeys+1 || allowed > maxLogKeys+1 {
		t.Errorf("%d entries, %d lines allowed for %d keys within a second; want at most %d", len(l.entries), allowed, 3*maxLogKeys, maxLogKeys+1)
	}
	clock.add(2 * time.Second)
	step(a, true, 0)
	if len(l.entries) != 1 {
		t.Errorf("%d entries two seconds later, want the one just used", len(l.entries))
	}
}

func TestConnLimits(t *testing.T) {
	src1, src2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	l := newConnLimits(Limits{MaxConnectionsPerSource: 2, MaxConnectionsPerEndpoint: 3})
	var held []limitSlot
	acquire := func(src netip.Addr, endpoint string, wantErr string) {
		t.Helper()
		slot, err := l.acquire(src, endpoint)
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("acquire(%v, %q): %v", src, endpoint, err)
		case wantErr != "" && (err == nil || err.Error() != wantErr):
			t.Fatalf("acquire(%v, %q) = %v, want %q", src, endpoint, err, wantErr)
		case err == nil:
			held = append(held, slot)
		}
	}
	acquire(src1, "", "")
	acquire(src1, "vpce-1", "")
	acquire(src1, "", "limits.max_connections_per_source (2) reached for 192.0.2.1")
	acquire(src2, "vpce-1", "")
	acquire(netip.Addr{}, "vpce-1", "") // no address (not TCP): the endpoint still counts
	acquire(src2, "vpce-1", "limits.max_connections_per_endpoint (3) reached for vpce-1")
	acquire(src2, "vpce-2", "") // the refusal above held nothing
	if got := l.sources[src2]; got != 2 {
		t.Fatalf("src2 holds %d, want 2", got)
	}
	for _, s := range held {
		l.release(s)
	}
	if len(l.sources)+len(l.endpoints) != 0 {
		t.Fatalf("after every release: %v %v, want empty maps", l.sources, l.endpoints)
	}

	// No caps: nothing is counted at all.
	none := newConnLimits(Limits{})
	if slot, err := none.acquire(src1, "vpce-1"); err != nil || slot != (limitSlot{}) || len(none.sources)+len(none.endpoints) != 0 {
		t.Fatalf("uncapped acquire: %+v, %v", slot, err)
	}
}

// TestConnLimitsConcurrent: many goroutines never hold more than the cap
// of one source, and leave nothing behind.
func TestConnLimitsConcurrent(t *testing.T) {
	const limit = 4
	l := newConnLimits(Limits{MaxConnectionsPerSource: limit})
	src := netip.MustParseAddr("192.0.2.9")
	var now, peak atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 500 {
				slot, err := l.acquire(src, "")
				if err != nil {
					continue
				}
				n := now.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				now.Add(-1)
				l.release(slot)
			}
		})
	}
	wg.Wait()
	if peak.Load() > limit || len(l.sources) != 0 {
		t.Fatalf("peak %d (cap %d), %d sources left", peak.Load(), limit, len(l.sources))
	}
}
