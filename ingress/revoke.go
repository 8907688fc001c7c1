package ingress

import (
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/routing"
)

// Access revoked applies to open connections (routes.revoke_after): a
// connection is routed once, in its handshake, but a reload that takes its
// access away (its instance removed, its instance no longer public for a
// connection that came without an endpoint, its endpoint removed from the
// instance's list) closes it RevokeAfter later, unless a reload gives the
// access back in the meantime.
//
// The cost of a reload must not grow with the table: the routed
// connections are registered by instance, and a reload looks up only the
// instances that have open connections, and goes through the connections
// of only those whose access (public, endpoints) changed. One timer per
// reload that revoked anything re-checks its connections against the
// table current at the deadline and closes those still not allowed.

// The values of Config.RevokeAfter.
const (
	// DefaultRevokeAfter is the grace between a reload that revokes a
	// connection's access and its close; a zero RevokeAfter means it.
	DefaultRevokeAfter = 10 * time.Second
	// RevokeNever (any negative RevokeAfter) leaves open connections open
	// whatever reloads say: routes.revoke_after: -1s.
	RevokeNever time.Duration = -1
	// RevokeAtOnce closes at the reload: routes.revoke_after: 0s (the zero
	// RevokeAfter is the default, as for the other durations New fills in).
	RevokeAtOnce = time.Nanosecond
)

// revokeShards spreads the registry's lock: every routed connection takes
// it twice (when it starts copying and when it ends).
const revokeShards = 64

var revokeSeed = maphash.MakeSeed()

// instKey names an instance across tables.
type instKey struct{ dbid, orch string }

// revocations is the registry of routed connections by instance. Its zero
// value is ready.
type revocations struct {
	check  sync.Mutex    // serialises the checks of reloads: each sees a table no older than the last one's
	gen    atomic.Uint64 // numbers the revocations, each with its deadline
	shards [revokeShards]revokeShard
}

type revokeShard struct {
	mu     sync.Mutex
	byInst map[instKey]*routedSet
}

// routedSet is the open connections of one instance.
type routedSet struct {
	conns map[*conn]struct{}
	// seen is what the last check found of the instance (nil: not in the
	// table); while known, every connection of the set was judged against
	// it, and a table that gives the same access changes nothing.
	seen  *routing.Instance
	known bool
}

// revokeState is a routed connection's part of the registry. sh and key
// are set once, when it registers; the rest is guarded by sh.mu.
type revokeState struct {
	sh         *revokeShard // nil: never registered
	key        instKey
	registered bool
	pending    uint64 // the revocation whose deadline closes it; 0: allowed
	revoked    error  // set when a revocation closes it: why
}

func (r *revocations) shard(k instKey) *revokeShard {
	return &r.shards[maphash.String(revokeSeed, k.dbid)%revokeShards]
}

// allowed reports whether inst (nil: removed) lets a connection that came
// through endpoint in.
func allowed(inst *routing.Instance, endpoint string) bool {
	return inst != nil && inst.Allows(endpoint)
}

// sameAccess reports whether two versions of an instance let the same
// connections in.
func sameAccess(a, b *routing.Instance) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a == b {
		return true
	}
	if a.Public != b.Public || len(a.Endpoints) != len(b.Endpoints) {
		return false
	}
	for i := range a.Endpoints {
		if a.Endpoints[i] != b.Endpoints[i] {
			return false
		}
	}
	return true
}

// Why a connection was closed, for its log line.
var (
	errRevokedRemoved  = errors.New("access revoked by a routes reload: the instance is no longer in the routing table")
	errRevokedPublic   = errors.New("access revoked by a routes reload: the instance is no longer public")
	errRevokedEndpoint = errors.New("access revoked by a routes reload: the endpoint is no longer in the instance's list")
)

func revokeReason(inst *routing.Instance, endpoint string) error {
	switch {
	case inst == nil:
		return errRevokedRemoved
	case endpoint == "":
		return errRevokedPublic
	}
	return errRevokedEndpoint
}

// register enters a routed connection, about to copy, in the registry. It
// is judged against the table current now: a reload between its handshake
// and now may have revoked it with no check to see it.
func (s *Server) register(c *conn) {
	if s.cfg.RevokeAfter < 0 || c.instance == nil {
		return
	}
	r := &s.revokes
	key := instKey{c.instance.DBID, c.instance.Orch}
	sh := r.shard(key)
	c.rev.sh, c.rev.key = sh, key
	var gen uint64
	sh.mu.Lock()
	inst := s.routes.Load().Get(key.dbid, key.orch)
	set := sh.byInst[key]
	switch {
	case set == nil:
		if sh.byInst == nil {
			sh.byInst = make(map[instKey]*routedSet)
		}
		set = &routedSet{conns: make(map[*conn]struct{}, 1), seen: inst, known: true}
		sh.byInst[key] = set
	case set.known && !sameAccess(inst, set.seen):
		set.known = false // judged against another table than the others: the next check judges them all
	}
	set.conns[c] = struct{}{}
	c.rev.registered = true
	if !allowed(inst, c.endpoint) {
		gen = r.gen.Add(1)
		c.rev.pending = gen
	}
	sh.mu.Unlock()
	if gen != 0 {
		s.revokeLater(gen, []*conn{c})
	}
}

// unregister takes a finishing connection out of the registry; one that a
// revocation closed ends with result revoked.
func (s *Server) unregister(c *conn) {
	sh := c.rev.sh
	if sh == nil {
		return
	}
	sh.mu.Lock()
	if set := sh.byInst[c.rev.key]; set != nil {
		delete(set.conns, c)
		if len(set.conns) == 0 {
			delete(sh.byInst, c.rev.key)
		}
	}
	c.rev.registered = false
	why := c.rev.revoked
	sh.mu.Unlock()
	if why != nil {
		c.log.result, c.log.err = resultRevoked, why
		s.metrics.revoked(c.l.svc)
	}
}

// RoutesChanged tells the server that its routing Holder holds a new
// table: open connections it no longer allows are closed
// Config.RevokeAfter later, unless a later table allows them again. Call
// it after every reload; it costs a lookup per instance with open
// connections, and a look at each connection of the instances whose access
// changed.
func (s *Server) RoutesChanged() {
	if s.cfg.RevokeAfter < 0 {
		return
	}
	r := &s.revokes
	r.check.Lock()
	defer r.check.Unlock()
	t := s.routes.Load()
	gen := r.gen.Add(1)
	var revoked []*conn
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for key, set := range sh.byInst {
			inst := t.Get(key.dbid, key.orch)
			if set.known && sameAccess(inst, set.seen) {
				continue
			}
			set.seen, set.known = inst, true
			for c := range set.conns {
				switch {
				case c.rev.revoked != nil: // closing already
				case allowed(inst, c.endpoint):
					c.rev.pending = 0 // given back before its deadline
				case c.rev.pending == 0:
					c.rev.pending = gen
					revoked = append(revoked, c)
				}
			}
		}
		sh.mu.Unlock()
	}
	if len(revoked) > 0 {
		s.logger.Info("routes reload revoked the access of open connections; closing them after routes.revoke_after unless a reload gives it back",
			zap.Int("connections", len(revoked)), zap.Duration("revoke_after", s.cfg.RevokeAfter))
		s.revokeLater(gen, revoked)
	}
}

// revokeLater closes conns, revoked by revocation gen, once the grace has
// passed, if they are still not allowed then.
func (s *Server) revokeLater(gen uint64, conns []*conn) {
	time.AfterFunc(s.cfg.RevokeAfter, func() { s.revokeNow(gen, conns) })
}

func (s *Server) revokeNow(gen uint64, conns []*conn) {
	t := s.routes.Load()
	closing := conns[:0]
	for _, c := range conns {
		sh := c.rev.sh
		sh.mu.Lock()
		if c.rev.registered && c.rev.pending == gen {
			c.rev.pending = 0
			inst := t.Get(c.rev.key.dbid, c.rev.key.orch)
			if allowed(inst, c.endpoint) {
				// Given back by a table whose check has not judged the
				// set yet: make sure it judges every connection.
				if set := sh.byInst[c.rev.key]; set != nil {
					set.known = false
				}
			} else {
				c.rev.revoked = revokeReason(inst, c.endpoint)
				closing = append(closing, c)
			}
		}
		sh.mu.Unlock()
	}
	if len(closing) == 0 {
		return
	}
	s.logger.Info("closing connections whose access a routes reload revoked", zap.Int("connections", len(closing)))
	for _, c := range closing {
		c.abort() // the copy's reads and writes fail, and the copy finishes the connection
	}
}

// newRevokedCounter makes ingress_connections_revoked_total, with a child
// per service, and registers it on reg.
func newRevokedCounter(reg prometheus.Registerer) (children [routing.NumServices]prometheus.Counter) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ingress_connections_revoked_total",
		Help: "Open connections closed because a routes reload revoked their access (routes.revoke_after).",
	}, []string{"service"})
	for svc := range routing.NumServices {
		children[svc] = vec.WithLabelValues(svc.String())
	}
	reg.MustRegister(vec)
	return children
}

func (m *Metrics) revoked(svc routing.Service) {
	if m != nil {
		m.revokes[svc].Inc()
	}
}
