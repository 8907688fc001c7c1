package tlsconfig

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"testing"

	"github.com/neo4j/private-ingress/internal/testenv"
)

// TestLookupAgreesWithCertmagic: the remembered lookup serves what
// certmagic's own would, for each kind of client and name, and leaves to
// certmagic what it does not serve.
func TestLookupAgreesWithCertmagic(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	const exact = "exact001.production-orch-0000.neo4j.io"
	s := NewStore(nil, nil)
	defer s.Close()
	if err := s.SetFiles(context.Background(), []CertFiles{
		selfSigned(t, t.TempDir(), rk), selfSigned(t, t.TempDir(), ec),
		selfSignedFor(t, t.TempDir(), rk, exact), // an exact name is chosen over the wildcards, even an ECDSA one
		// Under orch 0001 no certificate names a server exactly: its
		// lookups are remembered by parent domain.
		selfSignedFor(t, t.TempDir(), rk, "*.production-orch-0001.neo4j.io"),
		selfSignedFor(t, t.TempDir(), ec, "*.production-orch-0001.neo4j.io"),
	}); err != nil {
		t.Fatal(err)
	}
	tls12RSA := func(name string) *tls.ClientHelloInfo {
		h := modernHello()
		h.ServerName = name
		h.SupportedVersions = []uint16{tls.VersionTLS12}
		h.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
		return h
	}
	for _, tc := range []struct {
		name  string
		hello *tls.ClientHelloInfo
		ours  bool // served by the lookup, not left to certmagic
	}{
		{"TLS 1.3, wildcard", named(name), true},
		{"TLS 1.2 ECDHE_RSA, wildcard", tls12RSA(name), true},
		{"exact name", named(exact), true},
		{"exact name, TLS 1.2", tls12RSA(exact), true},
		{"upper case", named("ABCD1234.Production-Orch-0000.neo4j.io"), true},
		{"by parent, TLS 1.3", named("db1.production-orch-0001.neo4j.io"), true},
		{"by parent, TLS 1.2", tls12RSA("db2.production-orch-0001.neo4j.io"), true},
		{"by parent, upper case", named("DB3.PRODUCTION-orch-0001.neo4j.io"), true},
		{"a name nothing covers", named("db.production-orch-9999.neo4j.io"), false},
		{"two labels under the wildcard", named("a.abcd1234.production-orch-0000.neo4j.io"), false},
		{"no server name", named(""), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 3 { // remembered from the second on
				got := s.lookup(tc.hello)
				if (got != nil) != tc.ours {
					t.Fatalf("lookup served %v, want served %v", got != nil, tc.ours)
				}
				if got == nil {
					continue // certmagic's (it wants a hello.Conn for what it logs then)
				}
				want, err := s.magic.GetCertificate(tc.hello)
				if err != nil || !bytes.Equal(got.Certificate[0], want.Certificate[0]) {
					t.Fatalf("lookup served %q, certmagic %q (%v)", got.Leaf.DNSNames, want.Leaf.DNSNames, err)
				}
			}
		})
	}
}

// TestLookupIsSharedUnderAParent: the handshakes of many dbids under one
// wildcard share one remembered lookup.
func TestLookupIsSharedUnderAParent(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s := NewStore(nil, nil)
	defer s.Close()
	if err := s.SetFiles(context.Background(), []CertFiles{selfSigned(t, t.TempDir(), ec)}); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if s.lookup(named(fmt.Sprintf("db%04d.production-orch-0000.neo4j.io", i))) == nil {
			t.Fatalf("db%04d: no certificate", i)
		}
	}
	n := 0
	s.lookups.Load().names.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Errorf("%d lookups remembered for 100 names under one wildcard, want 1", n)
	}
}

// named is modernHello for another server name.
func named(name string) *tls.ClientHelloInfo {
	h := modernHello()
	h.ServerName = name
	return h
}

// TestLookupSeesNewCertificates: a reload is served by the next handshake;
// a certificate certmagic caches on its own (as ACME does) once what was
// remembered expires.
func TestLookupSeesNewCertificates(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	s := NewStore(nil, nil)
	defer s.Close()
	rsaFiles := selfSigned(t, t.TempDir(), rk)
	if err := s.SetFiles(context.Background(), []CertFiles{rsaFiles}); err != nil {
		t.Fatal(err)
	}
	keyType := func() string {
		c, err := s.GetCertificate(modernHello())
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0]) // the key may be OpenSSL's signer (-tags openssl)
		if err != nil {
			t.Fatal(err)
		}
		switch leaf.PublicKey.(type) {
		case *ecdsa.PublicKey:
			return "ecdsa"
		case *rsa.PublicKey:
			return "rsa"
		}
		return "other"
	}
	if got := keyType(); got != "rsa" {
		t.Fatalf("served %s, want rsa", got)
	}
	if err := s.SetFiles(context.Background(), []CertFiles{rsaFiles, selfSigned(t, t.TempDir(), ec)}); err != nil {
		t.Fatal(err)
	}
	if got := keyType(); got != "ecdsa" {
		t.Fatalf("after the reload: served %s, want the new ecdsa", got)
	}
	if err := s.SetFiles(context.Background(), []CertFiles{rsaFiles}); err != nil {
		t.Fatal(err)
	}
	if got := keyType(); got != "rsa" {
		t.Fatalf("after the ecdsa pair was dropped: served %s, want rsa", got)
	}
	// Behind the Store's back, as certmagic's ACME maintenance caches.
	ecFiles := selfSigned(t, t.TempDir(), ec)
	certPEM, _ := os.ReadFile(ecFiles.Cert)
	keyPEM, _ := os.ReadFile(ecFiles.Key)
	if _, err := s.magic.CacheUnmanagedCertificatePEMBytes(context.Background(), certPEM, keyPEM, nil); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the certificate certmagic cached to be served", func() bool { return keyType() == "ecdsa" })
}
