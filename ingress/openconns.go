package ingress

import (
	"sync"
	"sync/atomic"
)

// openShards spreads the open connections over this many locks.
const openShards = 16

// openConns is every connection the server has accepted and not yet
// finished, for the drain's end to close. A context.AfterFunc on the hard
// stop did the same per connection and held about 600 bytes of live heap
// for each idle one, as much as the rest of its bookkeeping; an entry in a
// map holds a few dozen.
type openConns struct {
	next   atomic.Uint32
	shards [openShards]struct {
		mu    sync.Mutex
		conns map[*conn]struct{}
	}
}

// add enters c, in the next shard round the ring.
func (o *openConns) add(c *conn) {
	c.openShard = uint8(o.next.Add(1) % openShards)
	sh := &o.shards[c.openShard]
	sh.mu.Lock()
	if sh.conns == nil {
		sh.conns = make(map[*conn]struct{})
	}
	sh.conns[c] = struct{}{}
	sh.mu.Unlock()
}

// remove takes c out.
func (o *openConns) remove(c *conn) {
	sh := &o.shards[c.openShard]
	sh.mu.Lock()
	delete(sh.conns, c)
	sh.mu.Unlock()
}

// all is the connections open now.
func (o *openConns) all() []*conn {
	var all []*conn
	for i := range o.shards {
		sh := &o.shards[i]
		sh.mu.Lock()
		for c := range sh.conns {
			all = append(all, c)
		}
		sh.mu.Unlock()
	}
	return all
}
