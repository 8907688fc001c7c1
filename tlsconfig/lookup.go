package tlsconfig

import (
	"crypto/tls"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// certLookups remembers, for a second, which cached certificates cover
// the server names that handshakes ask for. certmagic's own lookup, run
// for every handshake, copies every certificate in the cache (a custom
// selector is offered all of them when none names the server exactly)
// and builds a logger with the client's address encoded: 1.7% of an ECDSA
// handshake's CPU and 6.5% of the bytes it allocates. Lookups are
// remembered by parent domain, what a wildcard covers, so that the
// handshakes of a thousand dbids share one; by the whole name only under
// a parent where some certificate names a server exactly. A reload of the
// PEM files is seen by the next handshake (certGen); a certificate that
// certmagic obtains or renews on its own, within a second.
type certLookups struct {
	gen     uint64    // Store.certGen when these were started
	expires time.Time // when they are dropped
	names   sync.Map  // parent domain or whole name, as the client sent it → *coverage
}

// coverage is the cached certificates that cover one server name.
type coverage struct {
	certs []certmagic.Certificate // the exact matches first, then the wildcards
	exact int                     // how many name it exactly: if any, only they are chosen from, as certmagic does
}

// certLookupsFor is how long a lookup is remembered.
const certLookupsFor = time.Second

// lookup is the certificate for hello from the remembered lookups, or nil
// where certmagic decides: no server name (its default names), an ACME
// TLS-ALPN challenge, no cached certificate for the name (storage, or the
// refusal), none the selection can use.
func (s *Store) lookup(hello *tls.ClientHelloInfo) *tls.Certificate {
	name := hello.ServerName
	dot := strings.IndexByte(name, '.')
	if dot <= 0 || slices.Contains(hello.SupportedProtos, "acme-tls/1") {
		return nil
	}
	key := name[dot+1:] // what "*." covers
	if exact := s.exactParents.Load(); exact != nil && (*exact)[strings.ToLower(key)] {
		key = name
	}
	now := time.Now()
	gen := s.certGen.Load()
	l := s.lookups.Load()
	if l == nil || l.gen != gen || now.After(l.expires) {
		// Concurrent handshakes may each start afresh; the last one stays.
		l = &certLookups{gen: gen, expires: now.Add(certLookupsFor)}
		s.lookups.Store(l)
	}
	v, ok := l.names.Load(key)
	if !ok {
		covered := name
		if key != name {
			covered = "*." + key // the wildcard names itself exactly
		}
		c := s.cover(covered)
		if c == nil {
			return nil
		}
		v, _ = l.names.LoadOrStore(key, c)
	}
	c := v.(*coverage)
	choices := c.certs
	if c.exact > 0 {
		choices = choices[:c.exact]
	}
	i := chooseCertificate(hello, choices, now)
	if i < 0 {
		return nil
	}
	return &choices[i].Certificate
}

// cover finds the cached certificates that cover name; nil if none does.
func (s *Store) cover(name string) *coverage {
	name = strings.ToLower(name) // certmagic's index is lowercase
	all := s.cache.AllMatchingCertificates(name)
	if len(all) == 0 {
		return nil
	}
	c := &coverage{certs: all}
	for _, cert := range all {
		if !slices.Contains(cert.Names, name) {
			break
		}
		c.exact++
	}
	return c
}

// setExactParentsLocked records the parent domains under which a PEM pair
// or one of acme names a server exactly, not by wildcard, and makes the
// lookups remembered so far stale. Called with s.mu held.
func (s *Store) setExactParentsLocked(acme []string) {
	parents := map[string]bool{}
	note := func(n string) {
		if dot := strings.IndexByte(n, '.'); dot > 0 && !strings.HasPrefix(n, "*.") {
			parents[strings.ToLower(n[dot+1:])] = true
		}
	}
	for _, p := range s.loaded {
		for _, n := range p.leaf.Names {
			note(n)
		}
	}
	for _, n := range acme {
		note(n)
	}
	s.exactParents.Store(&parents)
	s.certGen.Add(1)
}
