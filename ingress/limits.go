package ingress

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Defaults of the limits on what one client can make the ingress hold.
const (
	// DefaultMaxExplainedPerSecond is limits.max_explained_per_second left
	// out (or zero in a Config built in code).
	DefaultMaxExplainedPerSecond = 50
	// ExplainNever, as Limits.MaxExplainedPerSecond, explains no refusal:
	// what max_explained_per_second: 0 in ingress.yaml becomes.
	ExplainNever = -1
)

// explainRate resolves Limits.MaxExplainedPerSecond: 0 is the default,
// a negative value never explains.
func explainRate(n int) int {
	switch {
	case n == 0:
		return DefaultMaxExplainedPerSecond
	case n < 0:
		return 0
	}
	return n
}

// connLimits counts the open connections of each client address and of
// each private endpoint, from the PROXY header on (those still in their
// TLS handshake included) to finish: limits.max_connections_per_source
// and limits.max_connections_per_endpoint. A cap of 0 counts nothing.
// An entry lives while its count is above zero, so the maps hold no more
// entries than there are open connections.
type connLimits struct {
	perSource, perEndpoint int32

	mu        sync.Mutex
	sources   map[netip.Addr]int32
	endpoints map[string]int32

	logs logLimiter // the "limit" log lines, at most one a second per key
}

func newConnLimits(l Limits) *connLimits {
	return &connLimits{
		perSource:   int32(max(0, l.MaxConnectionsPerSource)),
		perEndpoint: int32(max(0, l.MaxConnectionsPerEndpoint)),
		sources:     map[netip.Addr]int32{},
		endpoints:   map[string]int32{},
	}
}

// limitSlot is what one connection holds in connLimits.
type limitSlot struct {
	source   netip.Addr // valid when counted per source
	endpoint string     // non-empty when counted per endpoint
}

// sourceAddr is the client's address as connLimits keys it; invalid for
// an address that is not IP (a test's pipe).
func sourceAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// limitError refuses a connection over a cap; key is the source or the
// endpoint at its cap.
type limitError struct {
	key logKey
	cap int32
}

func (e *limitError) Error() string {
	if e.key.endpoint != "" {
		return fmt.Sprintf("limits.max_connections_per_endpoint (%d) reached for %s", e.cap, e.key.endpoint)
	}
	return fmt.Sprintf("limits.max_connections_per_source (%d) reached for %s", e.cap, e.key.source)
}

// acquire counts a connection from src through endpoint, or refuses it
// when either is at its cap; a refused connection holds nothing.
func (l *connLimits) acquire(src netip.Addr, endpoint string) (limitSlot, *limitError) {
	var slot limitSlot
	if l.perSource == 0 {
		src = netip.Addr{}
	}
	if l.perEndpoint == 0 {
		endpoint = ""
	}
	if !src.IsValid() && endpoint == "" {
		return slot, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if src.IsValid() && l.sources[src] >= l.perSource {
		return slot, &limitError{logKey{source: src}, l.perSource}
	}
	if endpoint != "" && l.endpoints[endpoint] >= l.perEndpoint {
		return slot, &limitError{logKey{endpoint: endpoint}, l.perEndpoint}
	}
	if src.IsValid() {
		l.sources[src]++
		slot.source = src
	}
	if endpoint != "" {
		l.endpoints[endpoint]++
		slot.endpoint = endpoint
	}
	return slot, nil
}

// release gives back what acquire counted.
func (l *connLimits) release(slot limitSlot) {
	if !slot.source.IsValid() && slot.endpoint == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if slot.source.IsValid() {
		if l.sources[slot.source]--; l.sources[slot.source] <= 0 {
			delete(l.sources, slot.source)
		}
	}
	if slot.endpoint != "" {
		if l.endpoints[slot.endpoint]--; l.endpoints[slot.endpoint] <= 0 {
			delete(l.endpoints, slot.endpoint)
		}
	}
}

// logKey is what the log lines of refused connections are rate-limited by.
type logKey struct {
	source   netip.Addr
	endpoint string
}

// maxLogKeys bounds the log limiter's memory: keys beyond it share one
// entry (the zero key) until the next prune.
const maxLogKeys = 4096

// logLimiter lets one log line a second through per key and counts the
// ones it holds back. Entries whose last line is two seconds old are
// pruned, at most once a second: it holds about the keys seen in the last
// three seconds, and a key refused steadily keeps its count of lines left
// out until its next line says it.
type logLimiter struct {
	mu        sync.Mutex
	entries   map[logKey]*logEntry
	lastPrune time.Time
}

type logEntry struct {
	last       time.Time
	suppressed int
}

// allow reports whether a line for key may be written at now, and how many
// lines for key were held back since the last one written.
func (l *logLimiter) allow(key logKey, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.entries == nil {
		l.entries = map[logKey]*logEntry{}
	}
	if now.Sub(l.lastPrune) >= time.Second {
		l.lastPrune = now
		for k, e := range l.entries {
			if now.Sub(e.last) >= 2*time.Second {
				delete(l.entries, k)
			}
		}
	}
	e, found := l.entries[key]
	if !found && len(l.entries) >= maxLogKeys {
		key = logKey{}
		e, found = l.entries[key]
	}
	if !found {
		l.entries[key] = &logEntry{last: now}
		return true, 0
	}
	if now.Sub(e.last) < time.Second {
		e.suppressed++
		return false, 0
	}
	suppressed, e.suppressed, e.last = e.suppressed, 0, now
	return true, suppressed
}

// tokenBucket is limits.max_explained_per_second: rate tokens a second,
// a burst of as many, full at the start. A rate of 0 never grants one.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newTokenBucket(rate int, now func() time.Time) *tokenBucket {
	return &tokenBucket{rate: float64(rate), tokens: float64(rate), last: now(), now: now}
}

// take takes one token, if there is one.
func (b *tokenBucket) take() bool {
	if b.rate <= 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if now := b.now(); now.After(b.last) {
		b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// setClock replaces the bucket's clock (tests); the tokens stay.
func (b *tokenBucket) setClock(now func() time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now, b.last = now, now()
}
