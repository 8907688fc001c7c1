package routing

import (
	"slices"
	"strings"
	"sync/atomic"
)

// Instance is one database instance: who may reach it and where it runs.
type Instance struct {
	DBID      string // lower case
	Orch      string // lower case
	Public    bool   // reachable without a private endpoint
	Paused    bool   // stopped by its owner: routed nowhere, and said so
	Endpoints []string
	pools     [NumServices]Pool
}

// Allows reports whether a connection that came through endpoint (empty for
// public traffic, which carries no endpoint id) may reach i.
func (i *Instance) Allows(endpoint string) bool {
	if endpoint == "" {
		return i.Public
	}
	return slices.Contains(i.Endpoints, endpoint)
}

// Pool returns i's backends for s (empty when it has none).
func (i *Instance) Pool(s Service) *Pool { return &i.pools[s] }

// Result says what a lookup found.
type Result uint8

// Lookup results.
const (
	Found       Result = iota
	NoName             // no server name was given
	UnknownHost        // not <dbid>.production-orch-<orch>.<domain>
	OtherOrch          // well formed, but the orch is not served here
	UnknownDBID        // well formed and served, but no such instance
)

// DefaultDomain is the domain served when the config names none.
const DefaultDomain = "neo4j.io"

// Namespace is the part of the name space this ingress serves.
type Namespace struct {
	Domain     string   // lower case, no trailing dot
	Orchestras []string // lower case
}

// Wildcards are the certificate names that cover every served zone:
// *.production-orch-<orch>.<domain>.
func (n Namespace) Wildcards() []string {
	names := make([]string, len(n.Orchestras))
	for i, orch := range n.Orchestras {
		names[i] = "*." + ZoneName(orch, n.Domain)
	}
	return names
}

// Equal reports whether two namespaces are the same.
func (n Namespace) Equal(o Namespace) bool {
	return n.Domain == o.Domain && slices.Equal(n.Orchestras, o.Orchestras)
}

// Table is an immutable routing table. Build one with Parse or LoadFile and
// publish it through a Holder.
type Table struct {
	ns        Namespace
	instances map[string]*Instance // key: dbid "." orch, lower case
	backends  map[string]*Backend  // by address, so health carries over a reload
}

// NewTable returns an empty table for ns.
func NewTable(ns Namespace) *Table {
	return &Table{ns: ns, instances: map[string]*Instance{}, backends: map[string]*Backend{}}
}

// Len returns the number of instances.
func (t *Table) Len() int { return len(t.instances) }

// Namespace returns the name space the table was built for.
func (t *Table) Namespace() Namespace { return t.ns }

// maxKey bounds a lookup key: a 63-byte dbid, a dot and an orch that fits
// in a 63-byte label after its prefix.
const maxKey = 63 + 1 + 63

// Lookup finds the instance named by host, a TLS server name. It is O(1) in
// the number of instances and does not allocate.
func (t *Table) Lookup(host string) (*Instance, Result) {
	if host == "" {
		return nil, NoName
	}
	dbid, orch, ok := SplitName(host, t.ns.Domain)
	if !ok {
		return nil, UnknownHost
	}
	if !t.serves(orch) {
		return nil, OtherOrch
	}
	var buf [maxKey]byte
	key := appendLower(appendLower(buf[:0], dbid), ".")
	key = appendLower(key, orch)
	if inst := t.instances[string(key)]; inst != nil { // no allocation: the compiler does not copy key here
		return inst, Found
	}
	return nil, UnknownDBID
}

// Has reports whether dbid in orch is in the table (case-insensitive).
func (t *Table) Has(dbid, orch string) bool {
	if len(dbid)+1+len(orch) > maxKey {
		return false
	}
	var buf [maxKey]byte
	key := appendLower(appendLower(buf[:0], dbid), ".")
	key = appendLower(key, orch)
	return t.instances[string(key)] != nil
}

// Serves reports whether orch is one of the served orchestras.
func (t *Table) serves(orch string) bool {
	for _, o := range t.ns.Orchestras {
		if strings.EqualFold(o, orch) {
			return true
		}
	}
	return false
}

func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// Holder publishes the current table. The zero value holds an empty table
// for an empty name space. It is safe for concurrent use.
type Holder struct {
	p atomic.Pointer[Table]
}

// Load returns the current table; a connection loads it once and uses that
// value throughout, so it never sees half of a reload.
func (h *Holder) Load() *Table {
	if t := h.p.Load(); t != nil {
		return t
	}
	return emptyTable
}

// Store publishes t.
func (h *Holder) Store(t *Table) { h.p.Store(t) }

var emptyTable = NewTable(Namespace{})
