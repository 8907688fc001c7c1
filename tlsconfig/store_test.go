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
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/opensslsign"
	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/loopback"
)

const name = "abcd1234.production-orch-0000.neo4j.io"

var wildcard = []string{"*.production-orch-0000.neo4j.io"}

func TestPolicy(t *testing.T) {
	var c tls.Config
	ApplyPolicy(&c)
	if c.MinVersion != tls.VersionTLS12 || c.MaxVersion != tls.VersionTLS13 {
		t.Errorf("versions %x..%x, want TLS 1.2..1.3", c.MinVersion, c.MaxVersion)
	}
	want := []uint16{
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	if !slices.Equal(c.CipherSuites, want) {
		t.Errorf("suites %v, want %v", c.CipherSuites, want)
	}
	c.CipherSuites[0] = 0 // callers get their own copy
	if CipherSuites()[0] != want[0] {
		t.Error("CipherSuites shares its backing array")
	}
}

// tlsServer serves handshakes with cfg on loopback and echoes.
func tlsServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	return loopback.EchoOn(t, tls.NewListener(loopback.Listen(t), cfg))
}

func dialLeaf(t *testing.T, addr string, roots *x509.CertPool) (*tls.Conn, *x509.Certificate) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, RootCAs: roots, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	c.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	return c, c.ConnectionState().PeerCertificates[0]
}

func roots(t *testing.T, caFiles ...string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for _, f := range caFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(pem)
	}
	return pool
}

func TestStoreServesAndReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	first, err := WriteDevCerts(filepath.Join(dir, "first"), wildcard)
	if err != nil {
		t.Fatal(err)
	}
	// Serve from a directory of its own, replaced by rename as cert-manager does.
	live := filepath.Join(dir, "live")
	os.MkdirAll(live, 0o755)
	install := func(from DevFiles) {
		for src, dst := range map[string]string{from.Cert: "tls.crt", from.Key: "tls.key"} {
			data, _ := os.ReadFile(src)
			tmp := filepath.Join(live, dst+".tmp")
			os.WriteFile(tmp, data, 0o600)
			if err := os.Rename(tmp, filepath.Join(live, dst)); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(first)
	files := CertFiles{Cert: filepath.Join(live, "tls.crt"), Key: filepath.Join(live, "tls.key")}

	s := NewStore(nil, nil)
	defer s.Close()
	if err := s.SetFiles(context.Background(), []CertFiles{files}); err != nil {
		t.Fatal(err)
	}
	if l := s.Leaves(); len(l) != 1 || !l[0].RSA || l[0].KeyType != "RSA-2048" {
		t.Fatalf("leaves %+v", l)
	}
	cfg := s.ServerConfig([]string{"h2", "http/1.1"})
	addr := tlsServer(t, cfg)

	second, err := WriteDevCerts(filepath.Join(dir, "second"), wildcard)
	if err != nil {
		t.Fatal(err)
	}
	pool := roots(t, first.CA, second.CA)
	old, leaf1 := dialLeaf(t, addr, pool)
	defer old.Close()
	if got := old.ConnectionState().NegotiatedProtocol; got != "h2" {
		t.Errorf("ALPN %q, want h2", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloaded := make(chan error, 4)
	go s.Watch(ctx, func(err error) { reloaded <- err })
	// Watch starts asynchronously: move the files again until it has seen
	// them (the second case paces the moves).
	deadline := time.After(testenv.WaitTimeout)
wait:
	for {
		install(second)
		select {
		case err := <-reloaded:
			if err != nil {
				t.Fatalf("reload: %v", err)
			}
			break wait
		case <-time.After(time.Second):
		case <-deadline:
			t.Fatal("no reload after the certificate files were replaced")
		}
	}

	c, leaf2 := dialLeaf(t, addr, pool)
	c.Close()
	if leaf2.SerialNumber.Cmp(leaf1.SerialNumber) == 0 {
		t.Fatal("a new handshake still gets the old certificate")
	}
	// The connection opened before the rotation is untouched.
	if _, err := old.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(old, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("old connection after rotation: %q, %v", buf, err)
	}
	if n := len(s.Leaves()); n != 1 {
		t.Errorf("%d leaves cached after a replacement, want 1", n)
	}
}

func TestBadReloadKeepsTheCertificate(t *testing.T) {
	dir := t.TempDir()
	dev, err := WriteDevCerts(dir, wildcard)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(nil, nil)
	defer s.Close()
	files := []CertFiles{{Cert: dev.Cert, Key: dev.Key}}
	if err := s.SetFiles(context.Background(), files); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(dev.Key, []byte("not a key"), 0o600)
	err = s.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), dev.Cert) {
		t.Fatalf("reload of a broken key: %v, want an error naming the pair", err)
	}
	addr := tlsServer(t, s.ServerConfig(nil))
	c, _ := dialLeaf(t, addr, roots(t, dev.CA))
	c.Close()
}

func TestSmallRSAKeyIsRefused(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	f := selfSigned(t, dir, key)
	if _, err := InspectFiles(f); err == nil || !strings.Contains(err.Error(), "2048") {
		t.Fatalf("RSA-1024: %v, want a refusal naming 2048", err)
	}
	s := NewStore(nil, nil)
	defer s.Close()
	if err := s.SetFiles(context.Background(), []CertFiles{f}); err == nil {
		t.Fatal("the store loaded an RSA-1024 certificate")
	}
}

func TestECDSALeafIsDescribed(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := InspectFiles(selfSigned(t, t.TempDir(), key))
	if err != nil {
		t.Fatal(err)
	}
	if leaf.RSA || leaf.KeyType != "ECDSA-P-256" {
		t.Fatalf("leaf %+v", leaf)
	}
}

func TestDevCertsAreReused(t *testing.T) {
	dir := t.TempDir()
	a, err := WriteDevCerts(dir, wildcard)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(a.CA)
	if _, err := WriteDevCerts(dir, wildcard); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(a.CA)
	if string(before) != string(after) {
		t.Error("a valid dev CA was replaced; browsers and drivers that trust it would break")
	}
	if _, err := WriteDevCerts(dir, []string{"*.production-orch-0001.neo4j.io"}); err != nil {
		t.Fatal(err)
	}
	leaf, err := InspectFiles(CertFiles{Cert: a.Cert, Key: a.Key})
	if err != nil || leaf.Names[0] != "*.production-orch-0001.neo4j.io" {
		t.Errorf("dev certs for other names: %+v, %v", leaf, err)
	}
}

func selfSigned(t testing.TB, dir string, key crypto.Signer) CertFiles {
	t.Helper()
	return selfSignedFor(t, dir, key, wildcard...)
}

// selfSignedFor writes a self-signed certificate for names, valid for an
// hour either side of now.
func selfSignedFor(t testing.TB, dir string, key crypto.Signer, names ...string) CertFiles {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := CertFiles{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "k.pem")}
	os.WriteFile(f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(f.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	return f
}

// TestEachClientGetsTheLeafItSupports: with an RSA and an ECDSA leaf for
// the same names, a TLS 1.3 client gets ECDSA and a TLS 1.2 client that
// offers only ECDHE_RSA suites gets RSA; a name neither covers gets none.
func TestEachClientGetsTheLeafItSupports(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecFiles, rsaFiles := selfSigned(t, t.TempDir(), ec), selfSigned(t, t.TempDir(), rk)
	s := NewStore(nil, nil)
	defer s.Close()
	if err := s.SetFiles(context.Background(), []CertFiles{rsaFiles, ecFiles}); err != nil {
		t.Fatal(err)
	}
	addr := tlsServer(t, s.ServerConfig(nil))
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		want string
	}{
		{"TLS 1.3", &tls.Config{ServerName: name, InsecureSkipVerify: true}, "*ecdsa.PublicKey"},
		{"TLS 1.2, ECDHE_RSA only", &tls.Config{ServerName: name, InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}}, "*rsa.PublicKey"},
	} {
		for range 5 { // the cache's order must not matter
			c, err := tls.Dial("tcp", addr, tc.cfg)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			got := fmt.Sprintf("%T", c.ConnectionState().PeerCertificates[0].PublicKey)
			c.Close()
			if got != tc.want {
				t.Fatalf("%s: leaf key %s, want %s", tc.name, got, tc.want)
			}
		}
	}
	if c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "db.production-orch-9999.neo4j.io", InsecureSkipVerify: true}); err == nil {
		c.Close()
		t.Error("a name no certificate covers got a certificate")
	}
}

// TestWatchFollowsNewDirectories: a certificate pair in a directory that
// SetFiles (a SIGHUP) added is watched from then on.
func TestWatchFollowsNewDirectories(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	a, err := WriteDevCerts(first, wildcard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := WriteDevCerts(second, wildcard)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(nil, nil)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.SetFiles(ctx, []CertFiles{{Cert: a.Cert, Key: a.Key}}); err != nil {
		t.Fatal(err)
	}
	reloads := make(chan error, 16)
	go s.Watch(ctx, func(err error) { reloads <- err })
	// Let the watch start on the first directory, so that SetFiles below
	// moves a running watch (the case under test), not one yet to start.
	testenv.WaitFor(t, "the watch to start", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.dirsChanged != nil
	})
	if err := s.SetFiles(ctx, []CertFiles{{Cert: b.Cert, Key: b.Key}}); err != nil {
		t.Fatal(err)
	}
	next := t.TempDir()
	if _, err := WriteDevCerts(next, wildcard); err != nil {
		t.Fatal(err)
	}
	// The watch moves to the new directory in the background, with no
	// signal when it is in place: replace the pair until a reload is
	// heard. Nothing changes in the first directory, so a reload can only
	// come from a watch on the second.
	replace := func() {
		for _, f := range []string{"tls.crt", "tls.key"} {
			data, _ := os.ReadFile(filepath.Join(next, f))
			os.WriteFile(filepath.Join(second, f+".tmp"), data, 0o600)
			os.Rename(filepath.Join(second, f+".tmp"), filepath.Join(second, f))
		}
	}
	deadline := time.After(testenv.WaitTimeout)
	for {
		replace()
		select {
		case err := <-reloads:
			if err != nil {
				t.Fatalf("reload: %v", err)
			}
			return
		case <-time.After(time.Second): // paces the replacements
		case <-deadline:
			t.Fatal("a change in the directory SetFiles added was not seen")
		}
	}
}

// TestRSAKeysSignWithOpenSSL: in builds with the openssl tag, handshakes
// with an RSA leaf sign through OpenSSL.
func TestRSAKeysSignWithOpenSSL(t *testing.T) {
	if !opensslsign.Available {
		t.Skip("built without -tags openssl")
	}
	files, err := WriteDevCerts(t.TempDir(), wildcard)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(nil, nil)
	defer s.Close()
	if err := s.SetFiles(context.Background(), []CertFiles{{Cert: files.Cert, Key: files.Key}}); err != nil {
		t.Fatal(err)
	}
	c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: name, SupportedVersions: []uint16{tls.VersionTLS13},
		SignatureSchemes: []tls.SignatureScheme{tls.PSSWithSHA256}, CipherSuites: []uint16{tls.TLS_AES_128_GCM_SHA256}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.PrivateKey.(*opensslsign.Signer); !ok {
		t.Errorf("the RSA leaf signs with %T", c.PrivateKey)
	}
	addr := tlsServer(t, s.ServerConfig(nil))
	conn, _ := dialLeaf(t, addr, roots(t, files.CA))
	conn.Close()
}

// TestECDSAKeysSignWithOpenSSL: in the openssl build an ECDSA leaf signs
// through OpenSSL too, and TLS 1.3 handshakes with it verify.
func TestECDSAKeysSignWithOpenSSL(t *testing.T) {
	if !opensslsign.Available {
		t.Skip("built without -tags openssl")
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s := NewStore(nil, nil)
	defer s.Close()
	if err := s.SetFiles(context.Background(), []CertFiles{selfSigned(t, t.TempDir(), ec)}); err != nil {
		t.Fatal(err)
	}
	c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: name, SupportedVersions: []uint16{tls.VersionTLS13},
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}, CipherSuites: []uint16{tls.TLS_AES_128_GCM_SHA256},
		SupportedCurves: []tls.CurveID{tls.CurveP256}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.PrivateKey.(*opensslsign.Signer); !ok {
		t.Errorf("the ECDSA leaf signs with %T", c.PrivateKey)
	}
	addr := tlsServer(t, s.ServerConfig(nil))
	for range 3 {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
}
