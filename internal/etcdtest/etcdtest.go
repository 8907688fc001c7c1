// Package etcdtest runs a real etcd (Debian's etcd-server, which .ci/run
// installs) on loopback ports for tests, and can stop and restart it on
// the same data.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Etcd is a single-member etcd cluster.
type Etcd struct {
	Endpoint string // http://127.0.0.1:port
	t        testing.TB
	bin, dir string
	client   string
	peer     string
	cmd      *exec.Cmd
	log      *os.File
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start runs etcd until the test ends.
func Start(t testing.TB) *Etcd {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("etcd is not installed; .ci/run installs etcd-server")
		}
		t.Skip("etcd is not installed (apt-get install etcd-server)")
	}
	dir := t.TempDir()
	e := &Etcd{t: t, bin: bin, dir: dir, client: freeAddr(t), peer: freeAddr(t)}
	e.Endpoint = "http://" + e.client
	log, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	e.log = log
	t.Cleanup(func() {
		e.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("etcd log (tail):\n%s", tail(b, 3000))
		}
	})
	e.Restart()
	return e
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Restart starts etcd (again, on the same data) and waits until it answers.
func (e *Etcd) Restart() {
	e.t.Helper()
	e.cmd = exec.Command(e.bin,
		"--name", "test", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.Endpoint, "--advertise-client-urls", e.Endpoint,
		"--listen-peer-urls", "http://"+e.peer, "--initial-advertise-peer-urls", "http://"+e.peer,
		"--initial-cluster", "test=http://"+e.peer, "--log-level", "warn")
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	if err := e.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	c := e.Client()
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Get(ctx, "health")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("etcd did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends etcd; Restart brings it back.
func (e *Etcd) Stop() {
	if e.cmd != nil && e.cmd.Process != nil {
		e.cmd.Process.Kill()
		e.cmd.Wait()
		e.cmd = nil
	}
}

// Client returns a client for the test's own puts and deletes.
func (e *Etcd) Client() *clientv3.Client {
	e.t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		e.t.Fatal(fmt.Errorf("etcd client: %w", err))
	}
	return c
}
