package routing

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func newPool(addrs ...string) *Pool {
	p := &Pool{}
	for _, a := range addrs {
		p.backends = append(p.backends, &Backend{Addr: a})
	}
	return p
}

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func TestPoolOrderRoundRobin(t *testing.T) {
	p := newPool("a", "b", "c")
	want := [][]string{
		{"a", "b", "c"},
		{"b", "c", "a"},
		{"c", "a", "b"},
		{"a", "b", "c"},
		{"b", "c", "a"},
	}
	for i, w := range want {
		if got := addrs(p.Order(t0, nil)); !slices.Equal(got, w) {
			t.Errorf("call %d: Order = %q; want %q", i, got, w)
		}
	}
}

func TestPoolOrderSingleAndEmpty(t *testing.T) {
	one := newPool("a")
	for i := range 3 {
		if got := addrs(one.Order(t0, nil)); !slices.Equal(got, []string{"a"}) {
			t.Errorf("call %d: Order = %q; want [a]", i, got)
		}
	}
	var empty Pool
	if empty.Len() != 0 {
		t.Errorf("empty pool Len = %d", empty.Len())
	}
	dst := []*Backend{{Addr: "x"}}
	if got := empty.Order(t0, dst); len(got) != 1 || got[0] != dst[0] {
		t.Errorf("empty pool Order changed dst: %q", addrs(got))
	}
}

func TestPoolOrderAppends(t *testing.T) {
	p := newPool("a", "b")
	keep := &Backend{Addr: "keep"}
	got := addrs(p.Order(t0, []*Backend{keep}))
	if !slices.Equal(got, []string{"keep", "a", "b"}) {
		t.Errorf("Order = %q; want [keep a b]", got)
	}
}

func TestPoolOrderCooldown(t *testing.T) {
	const cooldown = 10 * time.Second
	p := newPool("a", "b", "c")
	b := p.backends[1]
	b.Fail(t0, cooldown)

	steps := []struct {
		name string
		now  time.Time
		want []string
	}{
		// Round-robin start 0, 1, 2, 0, ...; b is last while it cools down.
		{"start a, b cooling", t0.Add(time.Second), []string{"a", "c", "b"}},
		{"start b, b cooling", t0.Add(2 * time.Second), []string{"c", "a", "b"}},
		{"start c, b cooling", t0.Add(3 * time.Second), []string{"c", "a", "b"}},
		{"start a, just before cooldown end", t0.Add(cooldown - time.Nanosecond), []string{"a", "c", "b"}},
		{"start b, cooldown over", t0.Add(cooldown), []string{"b", "c", "a"}},
		{"start c, later", t0.Add(time.Hour), []string{"c", "a", "b"}},
	}
	for _, s := range steps {
		if got := addrs(p.Order(s.now, nil)); !slices.Equal(got, s.want) {
			t.Errorf("%s: Order = %q; want %q", s.name, got, s.want)
		}
	}
}

func TestPoolOrderAllCooling(t *testing.T) {
	p := newPool("a", "b", "c")
	for i, b := range p.backends {
		b.Fail(t0, time.Duration(i+1)*time.Minute)
	}
	now := t0.Add(time.Second)
	want := [][]string{
		{"a", "b", "c"},
		{"b", "c", "a"},
		{"c", "a", "b"},
	}
	for i, w := range want {
		if got := addrs(p.Order(now, nil)); !slices.Equal(got, w) {
			t.Errorf("call %d: Order = %q; want %q (all cooling: still all, in rotation)", i, got, w)
		}
	}
	// a recovers first: it leads, the others keep their rotation behind it.
	if got := addrs(p.Order(t0.Add(90*time.Second), nil)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("a recovered: Order = %q; want [a b c]", got)
	}
	if got := addrs(p.Order(t0.Add(90*time.Second), nil)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("a recovered, start b: Order = %q; want [a b c]", got)
	}
}

func TestBackendFailSucceed(t *testing.T) {
	var b Backend
	if !b.Available(t0) {
		t.Fatal("new backend not available")
	}
	b.Succeed() // no-op on a healthy backend
	if !b.Available(t0) {
		t.Fatal("Succeed made a healthy backend unavailable")
	}
	b.Fail(t0, time.Minute)
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{
		{0, false},
		{30 * time.Second, false},
		{time.Minute - time.Nanosecond, false},
		{time.Minute, true},
		{time.Hour, true},
	} {
		if got := b.Available(t0.Add(c.at)); got != c.want {
			t.Errorf("Available(t0+%v) = %v; want %v", c.at, got, c.want)
		}
	}
	b.Succeed()
	if !b.Available(t0) {
		t.Error("Succeed did not clear the failure")
	}
	// A later failure replaces an earlier one.
	b.Fail(t0, time.Hour)
	b.Fail(t0, time.Second)
	if !b.Available(t0.Add(time.Second)) {
		t.Error("second Fail did not replace the first")
	}
	// Succeed in a pool puts the backend back in its round-robin place.
	p := newPool("a", "b")
	p.backends[0].Fail(t0, time.Minute)
	if got := addrs(p.Order(t0, nil)); !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("a failed: Order = %q; want [b a]", got)
	}
	p.backends[0].Succeed()
	if got := addrs(p.Order(t0, nil)); !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("start b after Succeed: Order = %q; want [b a]", got)
	}
	if got := addrs(p.Order(t0, nil)); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("start a after Succeed: Order = %q; want [a b]", got)
	}
}

func TestPoolOrderDoesNotAllocate(t *testing.T) {
	p := newPool("a", "b", "c")
	p.backends[1].Fail(t0, time.Minute)
	allocs := testing.AllocsPerRun(1000, func() {
		var buf [8]*Backend
		if got := p.Order(t0, buf[:0]); len(got) != 3 {
			panic(fmt.Sprint(len(got)))
		}
	})
	if allocs != 0 {
		t.Errorf("Order into a stack buffer allocates %v times per call; want 0", allocs)
	}
}

// The round-robin counter wraps after 2^32 calls; Order must keep working
// (and not index out of range) across the wrap.
func TestPoolOrderCounterWrap(t *testing.T) {
	p := newPool("a", "b", "c")
	for _, start := range []uint32{1<<31 - 1, 1 << 31, 1<<32 - 2, 1<<32 - 1} {
		p.next.Store(start)
		got := p.Order(t0, nil)
		if len(got) != 3 {
			t.Errorf("counter %d: Order = %q; want 3 backends", start, addrs(got))
		}
	}
}

// Several goroutines order, fail and clear one pool's backends at once. Run
// under -race; there are no timing assertions.
func TestPoolConcurrent(t *testing.T) {
	p := newPool("a", "b", "c", "d")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var buf [8]*Backend
			for i := range 2000 {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				got := p.Order(now, buf[:0])
				if len(got) == 0 {
					t.Errorf("goroutine %d: Order returned nothing", g)
					return
				}
				for _, b := range got {
					if !slices.Contains(p.backends, b) {
						t.Errorf("goroutine %d: Order returned a foreign backend %q", g, b.Addr)
						return
					}
				}
				b := got[0]
				switch (g + i) % 3 {
				case 0:
					b.Fail(now, 5*time.Millisecond)
				case 1:
					b.Succeed()
				default:
					_ = b.Available(now)
				}
			}
		})
	}
	wg.Wait()
}
