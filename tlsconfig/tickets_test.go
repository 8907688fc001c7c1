package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neo4j/private-ingress/tlsconfig"
)

// devCerts writes a dev CA and wildcard leaf, returning the files and roots.
func devCerts(t *testing.T) (tlsconfig.DevFiles, *x509.CertPool) {
	t.Helper()
	files, err := tlsconfig.WriteDevCerts(t.TempDir(), []string{"*.production-orch-0000.neo4j.io"})
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(files.CA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return files, roots
}

// ticketServer is a TLS echo server for files whose session ticket keys
// come from keys.
func ticketServer(t *testing.T, keys *tlsconfig.TicketKeys, files tlsconfig.DevFiles) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	keys.Register(cfg)
	return echoTLS(t, cfg)
}

// resumes connects twice with one session cache and reports whether the
// second handshake resumed. A TLS 1.3 ticket arrives after the handshake,
// so the first connection reads an echo before closing.
func resumes(t *testing.T, cache tls.ClientSessionCache, addr string, roots *x509.CertPool) bool {
	t.Helper()
	var last bool
	for range 2 {
		c, _, err := dialLeaf(addr, roots, func(c *tls.Config) { c.ClientSessionCache = cache })
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "ping\n")
		buf := make([]byte, 5)
		c.Read(buf)
		last = c.ConnectionState().DidResume
		c.Close()
	}
	return last
}

func TestSessionTicketsResumeAcrossRotations(t *testing.T) {
	keys, err := tlsconfig.NewTicketKeys(tlsconfig.SessionTickets{})
	if err != nil {
		t.Fatal(err)
	}
	files, roots := devCerts(t)
	addr := ticketServer(t, keys, files)
	cache := tls.NewLRUClientSessionCache(4)
	if !resumes(t, cache, addr, roots) {
		t.Fatal("a second connection did not resume")
	}
	// The last ticket was sealed with the current key; two rotations later
	// that key still decrypts, three later it is gone.
	keys.Rotate()
	keys.Rotate()
	c, _, _ := dialLeaf(addr, roots, func(c *tls.Config) { c.ClientSessionCache = cache })
	if c == nil || !c.ConnectionState().DidResume {
		t.Fatal("no resumption with a key two rotations old")
	}
	c.Close()
	fresh := tls.NewLRUClientSessionCache(4)
	resumes(t, fresh, addr, roots)
	for range 3 {
		keys.Rotate()
	}
	c, _, _ = dialLeaf(addr, roots, func(c *tls.Config) { c.ClientSessionCache = fresh })
	if c == nil || c.ConnectionState().DidResume {
		t.Fatal("resumed with a key rotated out")
	}
	c.Close()
}

// TestSessionTicketKeysFileSharesSessions: two servers (replicas) reading
// the same keys file resume each other's sessions.
func TestSessionTicketKeysFileSharesSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tickets.keys")
	os.WriteFile(path, []byte("# the first key encrypts\n"+strings.Repeat("ab", 32)+"\n"+strings.Repeat("cd", 32)+"\n"), 0o600)
	a, err := tlsconfig.NewTicketKeys(tlsconfig.SessionTickets{KeysFile: path})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tlsconfig.NewTicketKeys(tlsconfig.SessionTickets{KeysFile: path})
	files, roots := devCerts(t)
	addrA, addrB := ticketServer(t, a, files), ticketServer(t, b, files)
	cache := tls.NewLRUClientSessionCache(4)
	resumes(t, cache, addrA, roots)
	c, _, err := dialLeaf(addrB, roots, func(c *tls.Config) { c.ClientSessionCache = cache })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.ConnectionState().DidResume {
		t.Error("a session from replica A did not resume on replica B")
	}
}

func TestSessionTicketKeysFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, body, want string }{
		{"short key", "abcd\n", "bad.keys:1: a session ticket key is 64 hex digits (32 bytes), not 4 characters"},
		{"not hex", "# c\n" + strings.Repeat("zz", 32) + "\n", "bad.keys:2: session ticket key:"},
		{"no key", "# nothing\n\n", "bad.keys: no session ticket key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "bad.keys")
			os.WriteFile(path, []byte(tc.body), 0o600)
			_, err := tlsconfig.NewTicketKeys(tlsconfig.SessionTickets{KeysFile: path})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
