package dnsstub

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// TXTStore holds TXT records placed at run time, for ACME DNS-01 challenges.
// One name may hold several values at once: the wildcard and the apex
// certificate share one _acme-challenge name. It is safe for concurrent use.
type TXTStore struct {
	mu      sync.RWMutex
	records map[string][]string // lower-case FQDN → values
}

func txtKey(name string) string { return strings.ToLower(dns.Fqdn(name)) }

// AddTXT adds value to the TXT records of name (a trailing dot is optional).
func (s *TXTStore) AddTXT(_ context.Context, name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.records == nil {
		s.records = map[string][]string{}
	}
	k := txtKey(name)
	if !slices.Contains(s.records[k], value) {
		s.records[k] = append(s.records[k], value)
	}
	return nil
}

// RemoveTXT removes value from the TXT records of name.
func (s *TXTStore) RemoveTXT(_ context.Context, name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := txtKey(name)
	vals := slices.DeleteFunc(s.records[k], func(v string) bool { return v == value })
	if len(vals) == 0 {
		delete(s.records, k)
	} else {
		s.records[k] = vals
	}
	return nil
}

// lookup returns the values of a lower-case FQDN.
func (s *TXTStore) lookup(name string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.records[name])
}
