package tlsconfig

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/caddyserver/certmagic"
)

// BenchmarkSelectCertificate is the selector's part of a handshake: an RSA
// and an ECDSA leaf for the wildcard, a TLS 1.3 client.
func BenchmarkSelectCertificate(b *testing.B) {
	var choices []certmagic.Certificate
	for _, key := range []crypto.Signer{mustRSA(b), mustECDSA(b)} {
		files := selfSigned(b, b.TempDir(), key)
		pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
		if err != nil {
			b.Fatal(err)
		}
		choices = append(choices, certmagic.Certificate{Certificate: pair})
	}
	hello := modernHello()
	b.ReportAllocs()
	for b.Loop() {
		c, err := preferECDSA{}.SelectCertificate(hello, choices)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := c.PrivateKey.(*ecdsa.PrivateKey); !ok {
			b.Fatalf("selected %T", c.PrivateKey)
		}
	}
}

// modernHello is what a current TLS client sends, as the server sees it.
func modernHello() *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{ServerName: "abcd1234.production-orch-0000.neo4j.io",
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
		CipherSuites:      []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256},
		SupportedCurves:   []tls.CurveID{tls.X25519, tls.CurveP256}, SupportedPoints: []uint8{0}}
}

func mustRSA(tb testing.TB) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func mustECDSA(tb testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// TestCoversNameAgreesWithX509 checks the selector's name match against
// x509's VerifyHostname on the names a handshake can bring.
func TestCoversNameAgreesWithX509(t *testing.T) {
	leaf := &x509.Certificate{DNSNames: []string{"*.production-orch-0000.neo4j.io", "exact.example.com", "*.UPPER.example.com"}}
	for _, name := range []string{
		"abcd1234.production-orch-0000.neo4j.io", "ABCD1234.PRODUCTION-ORCH-0000.NEO4J.IO",
		"production-orch-0000.neo4j.io", "a.b.production-orch-0000.neo4j.io", ".production-orch-0000.neo4j.io",
		"abcd1234.production-orch-0001.neo4j.io", "exact.example.com", "EXACT.example.com", "x.exact.example.com",
		"x.upper.example.com", "example.com", "neo4j.io", "io", "a", "",
		"abcd1234.production-orch-0000.neo4j.io.evil", "abcd1234production-orch-0000.neo4j.io",
	} {
		want := leaf.VerifyHostname(name) == nil
		if got := coversName(leaf, name); got != want {
			t.Errorf("coversName(%q) = %v, VerifyHostname says %v", name, got, want)
		}
	}
}

// BenchmarkStoreGetCertificate is certificate selection as a handshake
// does it: through certmagic's cache, with an RSA and an ECDSA leaf.
func BenchmarkStoreGetCertificate(b *testing.B) {
	s := NewStore(nil, nil)
	defer s.Close()
	if err := s.SetFiles(context.Background(), []CertFiles{
		selfSigned(b, b.TempDir(), mustRSA(b)), selfSigned(b, b.TempDir(), mustECDSA(b)),
	}); err != nil {
		b.Fatal(err)
	}
	hello := modernHello()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetCertificate(hello); err != nil {
			b.Fatal(err)
		}
	}
}
