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
// to the end (tried only when every other one failed). Passing a
// stack-allocated dst keeps the connection path free of allocations.
func (p *Pool) Order(now time.Time, dst []*Backend) []*Backend {
	n := len(p.backends)
	if n == 0 {
		return dst
	}
	start := int(p.next.Add(1)-1) % n
	var cooling int
	for i := range n {
		b := p.backends[(start+i)%n]
		if b.Available(now) {
			dst = append(dst, b)
		} else {
			cooling++
		}
	}
	if cooling > 0 {
		for i := range n {
			b := p.backends[(start+i)%n]
			if !b.Available(now) {
				dst = append(dst, b)
			}
		}
	}
	return dst
}
