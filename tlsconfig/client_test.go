package tlsconfig_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neo4j/private-ingress/tlsconfig"
)

func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	files, err := tlsconfig.WriteDevCerts(dir, []string{"backend.test"})
	if err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o644)

	for _, tc := range []struct {
		name    string
		files   tlsconfig.ClientFiles
		wantErr string
		roots   bool
		certs   int
	}{
		{name: "system roots", files: tlsconfig.ClientFiles{}},
		{name: "own roots", files: tlsconfig.ClientFiles{CA: files.CA}, roots: true},
		{name: "client certificate", files: tlsconfig.ClientFiles{CA: files.CA, Cert: files.Cert, Key: files.Key}, roots: true, certs: 1},
		{name: "missing roots", files: tlsconfig.ClientFiles{CA: filepath.Join(dir, "nope.pem")}, wantErr: "ca: open"},
		{name: "roots not PEM", files: tlsconfig.ClientFiles{CA: notPEM}, wantErr: "ca: no PEM certificate in"},
		{name: "certificate without key", files: tlsconfig.ClientFiles{Cert: files.Cert}, wantErr: "client certificate:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tlsconfig.ClientConfig(tc.files)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ClientConfig = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			certs := 0
			if cfg.GetClientCertificate != nil {
				// Whatever the server says it accepts: none named here.
				if cert, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{}); err == nil && len(cert.Certificate) > 0 {
					certs++
				}
			}
			if (cfg.RootCAs != nil) != tc.roots || certs != tc.certs || cfg.MinVersion < 0x0303 {
				t.Errorf("config: roots %v, %d certificates, min version %x", cfg.RootCAs != nil, certs, cfg.MinVersion)
			}
		})
	}
}
