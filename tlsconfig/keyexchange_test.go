package tlsconfig

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"testing"
)

// TestKeyExchangePreference: by default a Go client (which sends key shares
// for X25519MLKEM768 and X25519) gets the post-quantum hybrid, whatever the
// list's order; without the hybrid it gets X25519; TLS 1.2 clients get an
// ECDHE curve either way.
func TestKeyExchangePreference(t *testing.T) {
	dev, err := WriteDevCerts(filepath.Join(t.TempDir(), "dev"), wildcard)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		names          []string
		want13, want12 tls.CurveID
	}{
		{nil, tls.X25519MLKEM768, tls.X25519},
		{[]string{"X25519", "X25519MLKEM768"}, tls.X25519MLKEM768, tls.X25519},
		{[]string{"X25519", "P-256"}, tls.X25519, tls.X25519},
		{[]string{"P-256", "P-384"}, tls.CurveP256, tls.CurveP256}, // after a HelloRetryRequest
	} {
		groups, err := KeyExchangeGroups(tc.names)
		if err != nil {
			t.Fatal(err)
		}
		s := NewStore(nil, nil)
		defer s.Close()
		if err := s.SetFiles(context.Background(), []CertFiles{{Cert: dev.Cert, Key: dev.Key}}); err != nil {
			t.Fatal(err)
		}
		s.SetKeyExchange(groups)
		addr := tlsServer(t, s.ServerConfig(nil))
		for version, want := range map[uint16]tls.CurveID{tls.VersionTLS13: tc.want13, tls.VersionTLS12: tc.want12} {
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, RootCAs: roots(t, dev.CA),
				MaxVersion: version})
			if err != nil {
				t.Fatalf("%v, %s: %v", tc.names, tls.VersionName(version), err)
			}
			if got := c.ConnectionState().CurveID; got != want {
				t.Errorf("key_exchange %v, %s: negotiated %v, want %v", tc.names, tls.VersionName(version), got, want)
			}
			c.Close()
		}
	}
}
