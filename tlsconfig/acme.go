package tlsconfig

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/libdns"
	"go.uber.org/zap"
)

// ChallengePublisher places and removes the TXT records of DNS-01
// challenges. Names are fully qualified. The DNS stub's TXT store is one;
// cmd/ingress connects them, so that neither package imports the other.
type ChallengePublisher interface {
	AddTXT(ctx context.Context, name, value string) error
	RemoveTXT(ctx context.Context, name, value string) error
}

// ACMEOptions are what managed certificates need besides the tls.acme
// section: the names, and for dns_provider stub, where challenges are
// published and a DNS server that answers for the names' zones. With
// dns_provider rfc2136 the section names both, and Publisher and Resolver
// are not used (the DNS stub may not run at all).
type ACMEOptions struct {
	Names     []string // e.g. *.production-orch-0000.neo4j.io
	Publisher ChallengePublisher
	// Resolver is the host:port certmagic asks for the zone of each
	// challenge name (an SOA lookup): the stub's own address, since the
	// zones may exist nowhere else.
	Resolver string
	// Storage, if set, gives each key type's storage (a fleet's shared
	// store); nil means file storage under tls.acme.storage.
	Storage func(keyType string) certmagic.Storage
}

// keyTypes are the managed certificates' keys: RSA-2048 always (the
// allowed TLS 1.2 suites are all ECDHE_RSA), ECDSA P-256 when asked.
func (a ACME) keyTypes() []certmagic.KeyType {
	if !a.wantsECDSA() {
		return []certmagic.KeyType{certmagic.RSA2048}
	}
	return []certmagic.KeyType{certmagic.RSA2048, certmagic.P256}
}

// ManageACME obtains and renews certificates for o.Names from the ACME
// directory in a, over the DNS-01 challenge, one per key type, into the
// same cache as the PEM files. It returns once management has started;
// certificates arrive in the background (the log says when), and renewals
// replace them in the cache without touching open connections. Call it at
// most once.
func (s *Store) ManageACME(ctx context.Context, a ACME, o ACMEOptions) error {
	roots, err := LoadRoots(a.CARoot)
	if err != nil {
		return fmt.Errorf("tls.acme.ca_root: %w", err)
	}
	solver, err := a.dns01(o)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.setExactParentsLocked(o.Names) // before certmagic caches any of them
	s.mu.Unlock()
	for _, kt := range a.keyTypes() {
		logger := s.logger.Named("acme").With(zap.String("key", string(kt)))
		// certmagic's storage paths do not name the key type: each key
		// type gets its own directory, or the two would overwrite each
		// other.
		var storage certmagic.Storage = &certmagic.FileStorage{Path: filepath.Join(a.Storage, string(kt))}
		if o.Storage != nil {
			storage = o.Storage(string(kt))
		}
		cfg := certmagic.New(s.cache, certmagic.Config{
			Logger:    logger,
			KeySource: certmagic.StandardKeyGenerator{KeyType: kt},
			Storage:   storage,
			OnEvent:   s.metrics.onEvent,
			OCSP:      certmagic.OCSPConfig{DisableStapling: true},
		})
		cfg.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
			CA:                      a.Directory,
			Email:                   a.Email,
			Agreed:                  true, // else certmagic prompts on stdin
			TrustedRoots:            roots,
			DisableHTTPChallenge:    true,
			DisableTLSALPNChallenge: true,
			DNS01Solver: &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
				DNSProvider:        solver.provider,
				Resolvers:          []string{solver.resolver},
				PropagationTimeout: solver.propagation,
				TTL:                challengeTTL,
				Logger:             logger,
			}},
			Logger: logger,
		})}
		if kt == certmagic.P256 {
			s.ecdsaACME.Store(cfg)
		} else {
			s.rsaACME.Store(cfg)
		}
		if err := cfg.ManageAsync(ctx, o.Names); err != nil {
			return fmt.Errorf("managing %s certificates for %v: %w", kt, o.Names, err)
		}
	}
	s.mu.Lock()
	s.acmeNames = o.Names
	s.mu.Unlock()
	return nil
}

// dns01 is how the challenges of one tls.acme section are published and
// checked.
type dns01 struct {
	provider challengeProvider
	// resolver is the server certmagic asks for each challenge's zone (an
	// SOA lookup) and, given one, for the propagation check: certmagic
	// asks its Resolvers rather than the zone's NS hosts.
	resolver    string
	propagation time.Duration // certmagic's PropagationTimeout; -1: no check
}

// rfc2136Propagation bounds the wait for an update to show at the server
// that took it: a primary applies an update before it answers, so this is
// a failure bound, not a schedule.
const rfc2136Propagation = 2 * time.Minute

// dns01 picks the challenge publisher of the section's dns_provider.
func (a ACME) dns01(o ACMEOptions) (dns01, error) {
	switch a.DNSProvider {
	case DNSProviderRFC2136:
		pub, err := NewRFC2136(a.RFC2136)
		if err != nil {
			return dns01{}, err
		}
		// certmagic asks its Resolvers, when set, for the zone and in the
		// propagation check, instead of the zone's NS hosts on port 53:
		// here the server that took the update. The ACME server asks the
		// public NS hosts, which the ingress may not reach; the primary
		// is the one it can check.
		return dns01{challengeProvider{pub}, a.RFC2136.Server, rfc2136Propagation}, nil
	case "", DNSProviderStub:
		if o.Publisher == nil || o.Resolver == "" {
			return dns01{}, errors.New("tls.acme.dns_provider stub needs the DNS stub (dns.address) to publish the challenges")
		}
		// The stub is the zone's server and publishes at once;
		// certmagic's propagation check would instead look up the zone's
		// NS hosts and query them on port 53.
		return dns01{challengeProvider{o.Publisher}, o.Resolver, -1}, nil
	default:
		return dns01{}, fmt.Errorf("tls.acme.dns_provider %q is not known (known: %s)", a.DNSProvider, strings.Join(DNSProviders(), ", "))
	}
}

// RenewACME renews every managed certificate now, whether due or not, and
// puts the new ones in the cache before removing the old ones: handshakes
// never see a gap, and open connections keep the certificate they have.
func (s *Store) RenewACME(ctx context.Context) error {
	s.mu.Lock()
	names := s.acmeNames
	s.mu.Unlock()
	var errs []error
	for _, cfg := range []*certmagic.Config{s.rsaACME.Load(), s.ecdsaACME.Load()} {
		if cfg == nil {
			continue
		}
		for _, name := range names {
			old := s.managedCerts(name, cfg == s.ecdsaACME.Load())
			if err := cfg.RenewCertSync(ctx, name, true); err != nil {
				errs = append(errs, fmt.Errorf("renewing %s: %w", name, err))
				continue
			}
			if _, err := cfg.CacheManagedCertificate(ctx, name); err != nil {
				errs = append(errs, fmt.Errorf("caching the renewed %s: %w", name, err))
				continue
			}
			for _, c := range old {
				s.cache.Remove([]string{c.Hash()})
			}
		}
	}
	return errors.Join(errs...)
}

// managedCerts returns the cached certificates for name of one key family
// that did not come from PEM files.
func (s *Store) managedCerts(name string, ecdsaKeys bool) []certmagic.Certificate {
	s.mu.Lock()
	fromFiles := map[string]bool{}
	for _, p := range s.loaded {
		fromFiles[p.hash] = true
	}
	s.mu.Unlock()
	var out []certmagic.Certificate
	for _, c := range s.cache.AllMatchingCertificates(name) {
		if _, isECDSA := c.PrivateKey.(*ecdsa.PrivateKey); !fromFiles[c.Hash()] && isECDSA == ecdsaKeys {
			out = append(out, c)
		}
	}
	return out
}

// configFor tells certmagic's cache which config maintains cert: the
// managed config of its key type. certmagic maintains no unmanaged
// certificate, so PEM files may map to it too.
func (s *Store) configFor(cert certmagic.Certificate) (*certmagic.Config, error) {
	managed := s.rsaACME.Load()
	if _, ok := cert.PrivateKey.(*ecdsa.PrivateKey); ok {
		managed = s.ecdsaACME.Load()
	}
	if managed != nil {
		return managed, nil
	}
	return s.magic, nil
}

// challengeProvider is a libdns provider over a ChallengePublisher: all
// certmagic's DNS-01 solver needs is to append and delete TXT records.
type challengeProvider struct{ pub ChallengePublisher }

func (p challengeProvider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	for _, r := range recs {
		rr := r.RR()
		if rr.Type != "TXT" {
			return nil, fmt.Errorf("challenge records are TXT, not %s", rr.Type)
		}
		if err := p.pub.AddTXT(ctx, libdns.AbsoluteName(rr.Name, zone), rr.Data); err != nil {
			return nil, fmt.Errorf("publishing %s: %w", rr.Name, err)
		}
	}
	return recs, nil
}

func (p challengeProvider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	for _, r := range recs {
		rr := r.RR()
		if err := p.pub.RemoveTXT(ctx, libdns.AbsoluteName(rr.Name, zone), rr.Data); err != nil {
			return nil, fmt.Errorf("removing %s: %w", rr.Name, err)
		}
	}
	return recs, nil
}

// preferECDSA picks, among the certificates for a name, an unexpired ECDSA
// one the client supports (a much cheaper handshake), else an unexpired one
// it supports (RSA for TLS 1.2's ECDHE_RSA suites), else any it supports.
// certmagic's default takes the first supported, in no particular order.
// With a custom selector certmagic offers every cached certificate when
// none matches the name, so the name is checked here too: a certificate for
// another name is never served.
type preferECDSA struct{}

func (preferECDSA) SelectCertificate(hello *tls.ClientHelloInfo, choices []certmagic.Certificate) (certmagic.Certificate, error) {
	if i := chooseCertificate(hello, choices, time.Now()); i >= 0 {
		return choices[i], nil
	}
	return certmagic.Certificate{}, fmt.Errorf("no certificate for %q", hello.ServerName)
}

// chooseCertificate is preferECDSA's choice among choices at now: the
// index of the certificate to serve, or -1 if none covers the name.
func chooseCertificate(hello *tls.ClientHelloInfo, choices []certmagic.Certificate, now time.Time) int {
	// SupportsCertificate would check the name again, with x509's
	// allocating VerifyHostname; coversName has done it.
	caps := *hello
	caps.ServerName = ""
	valid, supported, named := -1, -1, -1
	for i := range choices {
		c := &choices[i]
		if c.Leaf == nil || hello.ServerName != "" && !coversName(c.Leaf, hello.ServerName) {
			continue
		}
		named = cmpOr(named, i)
		if caps.SupportsCertificate(&c.Certificate) != nil {
			continue
		}
		if now.Before(c.Leaf.NotBefore) || now.After(c.Leaf.NotAfter) {
			supported = cmpOr(supported, i)
			continue
		}
		if _, ok := c.PrivateKey.(*ecdsa.PrivateKey); ok {
			return i
		}
		valid = cmpOr(valid, i)
	}
	// Nothing the client supports: the named one, and the handshake says so.
	return cmpOr(cmpOr(valid, supported), named)
}

// coversName reports whether leaf's DNS names cover the server name as
// x509's VerifyHostname does for one (an exact name, or a wildcard for the
// first label; ASCII case-insensitive), without its allocations: it runs
// for every certificate in every handshake. Go's server has already
// refused server names that end in a dot.
func coversName(leaf *x509.Certificate, name string) bool {
	dot := strings.IndexByte(name, '.')
	for _, n := range leaf.DNSNames {
		if equalASCIIFold(n, name) ||
			dot > 0 && len(n) > 2 && n[0] == '*' && n[1] == '.' && equalASCIIFold(n[1:], name[dot:]) {
			return true
		}
	}
	return false
}

// equalASCIIFold is strings.EqualFold for ASCII letters only, as DNS and
// x509 compare names (no Unicode folding: "K" is not the Kelvin sign).
func equalASCIIFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// cmpOr is the first of a and b that is an index (not -1).
func cmpOr(a, b int) int {
	if a >= 0 {
		return a
	}
	return b
}

var _ certmagic.CertificateSelector = preferECDSA{}
