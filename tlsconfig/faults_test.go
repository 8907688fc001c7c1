package tlsconfig

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/testenv"
)

// TestTruncatedFilesKeepTheCertificate: a certificate or key caught while
// a writer truncates it (empty, or cut in the middle) is refused and the
// running certificate stays.
func TestTruncatedFilesKeepTheCertificate(t *testing.T) {
	dir := t.TempDir()
	dev, err := WriteDevCerts(dir, wildcard)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _ := os.ReadFile(dev.Cert)
	keyPEM, _ := os.ReadFile(dev.Key)
	s := NewStore(nil, nil)
	defer s.Close()
	if err := s.SetFiles(context.Background(), []CertFiles{{Cert: dev.Cert, Key: dev.Key}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		data       []byte
	}{
		{"empty certificate", dev.Cert, nil},
		{"half a certificate", dev.Cert, certPEM[:len(certPEM)/2]},
		{"empty key", dev.Key, nil},
		{"half a key", dev.Key, keyPEM[:len(keyPEM)/2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(tc.file, tc.data, 0o600)
			defer os.WriteFile(dev.Cert, certPEM, 0o600)
			defer os.WriteFile(dev.Key, keyPEM, 0o600)
			if err := s.Reload(context.Background()); err == nil {
				t.Fatal("reload of a truncated file succeeded")
			}
			addr := tlsServer(t, s.ServerConfig(nil))
			c, _ := dialLeaf(t, addr, roots(t, dev.CA))
			c.Close()
		})
	}
}

// TestTruncatedTicketKeysFileKeepsTheKeys: the keys file emptied in place
// is refused, reported, and the keys in use stay.
func TestTruncatedTicketKeysFileKeepsTheKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tickets.keys")
	if err := os.WriteFile(path, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := NewTicketKeys(SessionTickets{KeysFile: path})
	if err != nil {
		t.Fatal(err)
	}
	before := keys.keys
	reloads := make(chan error, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go keys.Run(ctx, func(err error) { reloads <- err })
	var got error
	heard := func() bool {
		select {
		case got = <-reloads:
			return got != nil
		default:
			return false
		}
	}
	// Written again until heard, since the watch may not be up yet; each
	// write waits for the watch's debounce to settle first.
	testenv.WaitFor(t, "the emptied keys file to be reported", func() bool {
		os.WriteFile(path, nil, 0o600)
		return testenv.Poll(2*time.Second, heard)
	})
	if !strings.Contains(got.Error(), "no session ticket key") {
		t.Errorf("reload error %v", got)
	}
	keys.mu.Lock()
	defer keys.mu.Unlock()
	if len(keys.keys) != 1 || keys.keys[0] != before[0] {
		t.Errorf("keys changed to %x", keys.keys)
	}
}
