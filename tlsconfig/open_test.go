package tlsconfig_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/tlsconfig"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	files, err := tlsconfig.WriteDevCerts(dir, []string{"*.production-orch-0000.neo4j.io"})
	if err != nil {
		t.Fatal(err)
	}
	good := tlsconfig.Config{Certificates: []tlsconfig.CertFiles{{Cert: files.Cert, Key: files.Key}}}
	certs, tickets, err := tlsconfig.Open(context.Background(), good, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer certs.Close()
	if len(certs.Leaves()) != 1 || tickets == nil {
		t.Errorf("Open: %d leaves, tickets %v", len(certs.Leaves()), tickets)
	}

	for name, bad := range map[string]tlsconfig.Config{
		"missing files":        {Certificates: []tlsconfig.CertFiles{{Cert: filepath.Join(dir, "no.crt"), Key: files.Key}}},
		"unknown key exchange": {Certificates: good.Certificates, KeyExchange: []string{"X448"}},
		"missing ticket keys":  {Certificates: good.Certificates, SessionTickets: tlsconfig.SessionTickets{KeysFile: filepath.Join(dir, "no.keys")}},
	} {
		t.Run(name, func(t *testing.T) {
			if certs, _, err := tlsconfig.Open(context.Background(), bad, zap.NewNop(), prometheus.NewRegistry()); err == nil {
				certs.Close()
				t.Error("Open succeeded")
			}
		})
	}
}
