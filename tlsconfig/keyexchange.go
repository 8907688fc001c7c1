package tlsconfig

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
)

// keyExchanges are the groups tls.key_exchange may name, as the IANA
// registry spells them, in Go 1.26's default set and order.
var keyExchanges = []struct {
	name  string
	id    tls.CurveID
	tls12 bool // also an ECDHE curve for TLS 1.2
}{
	{"X25519MLKEM768", tls.X25519MLKEM768, false},
	{"SecP256r1MLKEM768", tls.SecP256r1MLKEM768, false},
	{"SecP384r1MLKEM1024", tls.SecP384r1MLKEM1024, false},
	{"X25519", tls.X25519, true},
	{"P-256", tls.CurveP256, true},
	{"P-384", tls.CurveP384, true},
	{"P-521", tls.CurveP521, true},
}

// KeyExchangeNames lists the names tls.key_exchange accepts.
func KeyExchangeNames() []string {
	names := make([]string, len(keyExchanges))
	for i, k := range keyExchanges {
		names[i] = k.name
	}
	return names
}

// KeyExchangeGroup returns the group a tls.key_exchange entry names.
func KeyExchangeGroup(name string) (tls.CurveID, error) {
	for _, k := range keyExchanges {
		if strings.EqualFold(name, k.name) {
			return k.id, nil
		}
	}
	return 0, fmt.Errorf("unknown key exchange %q (known: %s)", name, strings.Join(KeyExchangeNames(), ", "))
}

// KeyExchangeGroups turns tls.key_exchange into the set of groups the
// server accepts; nil (no list) is Go's default, all of keyExchanges. The
// order does not matter: Go's server always takes a post-quantum hybrid
// when the client supports one, then a group the client sent a key share
// for. The list must hold a group TLS 1.2 can use, or ECDHE_RSA clients
// would find nothing in common.
func KeyExchangeGroups(names []string) ([]tls.CurveID, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var groups []tls.CurveID
	tls12 := false
	for _, name := range names {
		id, err := KeyExchangeGroup(name)
		if err != nil {
			return nil, err
		}
		if slices.Contains(groups, id) {
			return nil, fmt.Errorf("key exchange %q is listed twice", name)
		}
		groups = append(groups, id)
		for _, k := range keyExchanges {
			tls12 = tls12 || k.id == id && k.tls12
		}
	}
	if !tls12 {
		return nil, fmt.Errorf("no group TLS 1.2 can use (X25519, P-256, P-384 or P-521): ECDHE_RSA clients would fail")
	}
	return groups, nil
}

// SetKeyExchange sets the key exchange groups of the configs ServerConfig
// makes from now on (nil: Go's default).
func (s *Store) SetKeyExchange(groups []tls.CurveID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups = slices.Clone(groups)
}
