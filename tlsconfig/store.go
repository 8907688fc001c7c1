package tlsconfig

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/internal/fswatch"
	"github.com/neo4j/private-ingress/internal/opensslsign"
)

// Store holds the certificates the ingress serves, in a certmagic cache of
// its own (never certmagic's package defaults). PEM files are cached as
// unmanaged certificates; the ACME issue plugs managed ones into the same
// cache. Store is safe for concurrent use.
type Store struct {
	logger  *zap.Logger
	cache   *certmagic.Cache
	magic   *certmagic.Config // serves handshakes; holds the PEM files
	metrics *Metrics

	signers sync.Map // private key → its *tls.Certificate with an OpenSSL signer

	// Handshakes find their certificates here (lookup.go); certGen counts
	// the changes to the cache that make what it remembers stale.
	lookups      atomic.Pointer[certLookups]
	certGen      atomic.Uint64
	exactParents atomic.Pointer[map[string]bool] // parent domains with a certificate for an exact name under them

	// The managed configs, one per key type, once ManageACME ran.
	rsaACME, ecdsaACME atomic.Pointer[certmagic.Config]

	mu          sync.Mutex
	files       []CertFiles
	loaded      map[CertFiles]loadedPair
	acmeNames   []string
	dirsChanged chan struct{} // closed when SetFiles names other directories
	groups      []tls.CurveID // key exchange preference; nil: Go's default
}

type loadedPair struct {
	cert, key []byte // file contents, to skip unchanged files on reload
	hash      string // certmagic cache key, to remove it when replaced
	leaf      Leaf
}

// NewStore returns an empty store. Close it to stop certmagic's maintenance
// goroutine. metrics may be nil.
func NewStore(logger *zap.Logger, metrics *Metrics) *Store {
	if logger == nil {
		logger = zap.NewNop()
	}
	s := &Store{logger: logger, loaded: map[CertFiles]loadedPair{}, metrics: metrics}
	s.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: s.configFor,
		Logger:           logger.Named("certmagic"),
	})
	s.magic = certmagic.New(s.cache, certmagic.Config{
		Logger: logger.Named("certmagic"),
		// Unmanaged PEM certificates carry no OCSP responder we must reach;
		// stapling would only make start-up wait on the network.
		OCSP:          certmagic.OCSPConfig{DisableStapling: true},
		Storage:       &certmagic.FileStorage{Path: filepath.Join(os.TempDir(), "ingress-certmagic")},
		CertSelection: preferECDSA{},
	})
	metrics.watch(s)
	return s
}

// Close stops the certificate cache's maintenance.
func (s *Store) Close() { s.cache.Stop() }

// SetFiles replaces the set of PEM files and loads them. At start-up any
// error is fatal to the caller; on reload a pair that fails keeps serving
// its previous certificate, and the error says which pair and why.
func (s *Store) SetFiles(ctx context.Context, files []CertFiles) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, f := range files {
		if err := s.loadLocked(ctx, f); err != nil {
			errs = append(errs, fmt.Errorf("certificate %s: %w", f.Cert, err))
		}
	}
	// Drop pairs that are no longer configured.
	for f, p := range s.loaded {
		if !slices.Contains(files, f) {
			s.cache.Remove([]string{p.hash})
			delete(s.loaded, f)
		}
	}
	before := s.dirsLocked()
	s.files = slices.Clone(files)
	if s.dirsChanged != nil && !slices.Equal(before, s.dirsLocked()) {
		close(s.dirsChanged) // Watch restarts on the new directories
		s.dirsChanged = nil
	}
	s.setExactParentsLocked(s.acmeNames) // after the cache changed: a lookup from now on sees it
	s.warnIfNoRSALocked()
	return errors.Join(errs...)
}

// Reload re-reads every configured PEM pair, replacing those that changed.
func (s *Store) Reload(ctx context.Context) error {
	s.mu.Lock()
	files := s.files
	s.mu.Unlock()
	return s.SetFiles(ctx, files)
}

func (s *Store) loadLocked(ctx context.Context, f CertFiles) error {
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return fmt.Errorf("reading certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return fmt.Errorf("reading key: %w", err)
	}
	old, had := s.loaded[f]
	if had && bytes.Equal(old.cert, certPEM) && bytes.Equal(old.key, keyPEM) {
		return nil
	}
	_, leaf, err := inspect(certPEM, keyPEM)
	if err != nil {
		return err
	}
	// Cache the new certificate first, then remove the old one by hash: the
	// ...AsReplacement helpers would evict every certificate for the same
	// names, including the other key type's leaf.
	hash, err := s.magic.CacheUnmanagedCertificatePEMBytes(ctx, certPEM, keyPEM, nil)
	if err != nil {
		return fmt.Errorf("caching: %w", err)
	}
	if had && old.hash != hash {
		s.cache.Remove([]string{old.hash})
	}
	s.loaded[f] = loadedPair{cert: certPEM, key: keyPEM, hash: hash, leaf: leaf}
	s.logger.Info("certificate loaded",
		zap.String("file", f.Cert), zap.Strings("names", leaf.Names),
		zap.String("key", leaf.KeyType), zap.Time("not_after", leaf.NotAfter))
	return nil
}

func (s *Store) warnIfNoRSALocked() {
	if len(s.loaded) == 0 {
		return
	}
	for _, p := range s.loaded {
		if p.leaf.RSA {
			return
		}
	}
	s.logger.Warn("no RSA certificate: the allowed TLS 1.2 suites are all ECDHE_RSA, so TLS 1.2 clients will fail")
}

// Leaves describes the certificates currently loaded.
func (s *Store) Leaves() []Leaf {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Leaf, 0, len(s.loaded))
	for _, p := range s.loaded {
		out = append(out, p.leaf)
	}
	return out
}

// GetCertificate picks the certificate for hello: an exact name, then a
// wildcard, and among several (RSA and ECDSA) the first the client supports.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.lookup(hello)
	var err error
	if c == nil {
		c, err = s.magic.GetCertificate(hello)
	}
	if err != nil || !opensslsign.Available {
		return c, err
	}
	return s.withOpenSSL(c), nil
}

// withOpenSSL returns c with its key held by OpenSSL (in builds with the
// openssl tag): the handshake's one signature is the costly part of a full
// handshake, and libcrypto makes it about three times faster than Go for
// RSA-2048, twice for ECDSA P-256. Made once per key, for PEM files and
// ACME certificates alike.
func (s *Store) withOpenSSL(c *tls.Certificate) *tls.Certificate {
	var key crypto.Signer
	switch k := c.PrivateKey.(type) {
	case *rsa.PrivateKey:
		key = k
	case *ecdsa.PrivateKey:
		key = k
	default:
		return c
	}
	if v, ok := s.signers.Load(key); ok {
		return v.(*tls.Certificate)
	}
	signer, err := opensslsign.New(key)
	if err != nil {
		s.logger.Warn("OpenSSL refused the key; signing with Go", zap.Error(err))
		return c
	}
	fast := *c
	fast.PrivateKey = signer
	v, _ := s.signers.LoadOrStore(key, &fast)
	return v.(*tls.Certificate)
}

// ServerConfig returns a server configuration for one listener: the policy,
// this store's certificates and the listener's own ALPN list. It does not
// start from certmagic's TLSConfig, whose NextProtos is acme-tls/1 alone and
// would make Go refuse every client offering other protocols.
func (s *Store) ServerConfig(alpn []string) *tls.Config {
	s.mu.Lock()
	groups := slices.Clone(s.groups)
	s.mu.Unlock()
	c := &tls.Config{
		GetCertificate:   s.GetCertificate,
		NextProtos:       slices.Clone(alpn),
		CurvePreferences: groups,
	}
	ApplyPolicy(c)
	return c
}

// Watch reloads the PEM files when they change, until ctx is done.
// onReload hears each attempt's outcome. A SetFiles that names another
// directory restarts the watch on the new set.
func (s *Store) Watch(ctx context.Context, onReload func(error)) error {
	for {
		s.mu.Lock()
		dirs := s.dirsLocked()
		changed := make(chan struct{})
		s.dirsChanged = changed
		s.mu.Unlock()
		wctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-changed:
				cancel()
			case <-wctx.Done():
			}
		}()
		var err error
		if len(dirs) == 0 {
			<-wctx.Done()
		} else {
			// A cert and its key are written one after the other: wait for both.
			err = fswatch.Dirs(wctx, dirs, 250*time.Millisecond, func() {
				err := s.Reload(ctx)
				if onReload != nil {
					onReload(err)
				}
			}, func(err error) {
				if onReload != nil {
					onReload(fmt.Errorf("watching certificates: %w", err))
				}
			})
		}
		cancel()
		if err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// dirsLocked lists the directories of the configured files.
func (s *Store) dirsLocked() []string {
	var dirs []string
	for _, f := range s.files {
		for _, d := range []string{filepath.Dir(f.Cert), filepath.Dir(f.Key)} {
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	slices.Sort(dirs)
	return dirs
}
