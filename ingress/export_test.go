package ingress

import (
	"net/netip"
	"time"
)

// SetExplainClock makes every listener's max_explained_per_second budget
// read now, so that a test decides when tokens come back.
func SetExplainClock(s *Server, now func() time.Time) {
	for _, l := range s.listeners {
		l.explainBudget.setClock(now)
	}
}

// HeldBySource is the count of open connections from addr that
// max_connections_per_source sees.
func HeldBySource(s *Server, addr string) int {
	s.limits.mu.Lock()
	defer s.limits.mu.Unlock()
	return int(s.limits.sources[netip.MustParseAddr(addr)])
}

// HeldByEndpoint is the count of open connections through endpoint that
// max_connections_per_endpoint sees.
func HeldByEndpoint(s *Server, endpoint string) int {
	s.limits.mu.Lock()
	defer s.limits.mu.Unlock()
	return int(s.limits.endpoints[endpoint])
}

// MaxIdleWorkers is how many goroutines the pool of workers keeps waiting.
func MaxIdleWorkers(s *Server) int { return int(s.workers.maxIdle) }
