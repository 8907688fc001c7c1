package routing

import (
	"sync/atomic"
	"time"
)

// Backend is one address of an instance for one service, with its passive
// health: a backend whose dial failed is tried last until its cooldown ends.
// A reload keeps the Backend value of an unchanged address, so its health
// survives reloads.
type Backend struct {
	Addr      string
	downUntil atomic.Int64 // unix nanoseconds; 0 when healthy
}

// Fail marks b as failing for cooldown from now.
func (b *Backend) Fail(now time.Time, cooldown time.Duration) {
	b.downUntil.Store(now.Add(cooldown).UnixNano())
}

// Succeed clears a failure mark.
func (b *Backend) Succeed() {
	if b.downUntil.Load() != 0 {
		b.downUntil.Store(0)
	}
}

// Available reports whether b is not cooling down at now.
func (b *Backend) Available(now time.Time) bool {
	d := b.downUntil.Load()
	return d == 0 || now.UnixNano() >= d
}

// Pool is the set of backends of one instance for one service: several
// backends make a cluster, balanced round-robin with failover.
type Pool struct {
	next     atomic.Uint32
	backends []*Backend
}

// Len returns the number of backends.
func (p *Pool) Len() int { return len(p.backends) }

// Order appends the pool's backends to dst in the order a dial should try
// them: round-robin from a rotating start, with the ones cooling down moved
// to the end (tried only when every other one failed). Each backend's state
// is read once, so a concurrent Fail or Succeed cannot drop or repeat one.
// Passing a stack-allocated dst keeps the connection path free of
// allocations; pools of more than 64 backends treat the rest as available.
func (p *Pool) Order(now time.Time, dst []*Backend) []*Backend {
	n := len(p.backends)
	if n == 0 {
		return dst
	}
	start := int((p.next.Add(1) - 1) % uint32(n)) // unsigned: no negative index after wrap-around
	var cooling uint64
	for i := range n {
		b := p.backends[(start+i)%n]
		if i < 64 && !b.Available(now) {
			cooling |= 1 << i
			continue
		}
		dst = append(dst, b)
	}
	for i := range min(n, 64) {
		if cooling&(1<<i) != 0 {
			dst = append(dst, p.backends[(start+i)%n])
		}
	}
	return dst
}
