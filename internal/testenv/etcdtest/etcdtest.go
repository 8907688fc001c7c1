// Package etcdtest runs a real etcd (Debian's etcd-server, which .ci/run
// installs) on loopback ports for tests, and can stop and restart it on
// the same data.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/neo4j/private-ingress/internal/testenv"
)

// Etcd is a single-member etcd cluster. Clients reach it through
// Endpoint, a relay in the test process that holds its port for the whole
// test: etcd itself listens on ports picked at each start, and a start
// whose port was taken in the meantime is retried on others, so neither a
// start nor a restart can fail on a stolen port.
type Etcd struct {
	Endpoint string // http://127.0.0.1:port
	t        testing.TB
	bin, dir string
	log      *os.File
	front    net.Listener // the relay's, behind Endpoint

	// Set while etcd runs.
	cmd          *exec.Cmd
	exited       chan struct{} // closed when cmd has exited
	client, peer string        // etcd's own listeners
	data         string        // its data directory, kept across restarts once it started

	mu       sync.Mutex
	upstream string                // etcd's client address; "" while stopped
	conns    map[net.Conn]struct{} // relayed connections, cut by Stop
}

// startTries bounds the starts on fresh ports after one failed on a taken port.
const startTries = 5

// errPortTaken marks a start that failed because a port was taken between
// picking and binding it.
var errPortTaken = errors.New("a port etcd was to listen on was taken")

// pickAddr picks the ports etcd listens on; tests replace it.
var pickAddr = freeAddr

// freeAddr picks a free loopback port. Another process may take it before
// etcd binds it: starts retry (see Restart).
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start runs etcd until the test ends. It is an external test's: the
// quick tier (-short) skips the test.
func Start(t testing.TB) *Etcd {
	t.Helper()
	testenv.External(t)
	bin, err := exec.LookPath("etcd")
	if err != nil {
		testenv.Missing(t, "etcd", "apt-get install etcd-server")
	}
	dir := t.TempDir()
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	e := &Etcd{t: t, bin: bin, dir: dir, log: log, front: front, conns: map[net.Conn]struct{}{}}
	e.Endpoint = "http://" + front.Addr().String()
	go e.relay()
	t.Cleanup(func() {
		e.Stop()
		front.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("etcd log (tail):\n%s", tail(b, 3000))
		}
		log.Close()
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
	if e.cmd != nil {
		e.t.Fatal("etcdtest: Restart while etcd runs; Stop it first")
	}
	for try := 1; ; try++ {
		if e.client == "" {
			e.client, e.peer = pickAddr(e.t), pickAddr(e.t)
		}
		if e.data == "" {
			// A start that fails leaves nothing behind that the next must
			// honour: each first start gets a directory of its own.
			e.data = filepath.Join(e.dir, fmt.Sprintf("data%d", try))
		}
		err := e.launch()
		if err == nil {
			e.mu.Lock()
			e.upstream = e.client
			e.mu.Unlock()
			return
		}
		if !errors.Is(err, errPortTaken) || try == startTries {
			e.t.Fatalf("etcd did not start: %v", err)
		}
		e.t.Logf("etcd did not start (%v); again on other ports", err)
		e.client, e.peer = "", "" // a single member may change its peer URL on restart
		if !e.started() {
			e.data = ""
		}
	}
}

// started reports whether etcd ever started on its data directory.
func (e *Etcd) started() bool {
	_, err := os.Stat(filepath.Join(e.data, "member"))
	return err == nil
}

// launch runs etcd on e.client and e.peer and waits until it answers, or
// exits: errPortTaken if its log says a port was in use.
func (e *Etcd) launch() error {
	client, peer := "http://"+e.client, "http://"+e.peer
	mark, _ := e.log.Seek(0, io.SeekEnd)
	cmd := exec.Command(e.bin,
		"--name", "test", "--data-dir", e.data,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test="+peer, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = e.log, e.log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	e.cmd, e.exited = cmd, exited

	c, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second})
	if err != nil {
		e.Stop()
		return fmt.Errorf("etcd client: %w", err)
	}
	defer c.Close()
	ready := testenv.WaitServing(exited, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Get(ctx, "health")
		return err
	})
	if errors.Is(ready, testenv.ErrExited) {
		e.cmd, e.exited = nil, nil
		out := make([]byte, 4096)
		n, _ := e.log.ReadAt(out, mark)
		if line := testenv.AddrInUse(string(out[:n])); line != "" {
			return fmt.Errorf("%w: %s", errPortTaken, line)
		}
		return fmt.Errorf("etcd exited: %v\n%s", cmd.ProcessState, out[:n])
	}
	if ready != nil {
		e.Stop()
		return ready
	}
	return nil
}

// Stop ends etcd and cuts every connection through Endpoint; until
// Restart, new ones are closed at once. Restart brings it back.
func (e *Etcd) Stop() {
	e.mu.Lock()
	e.upstream = ""
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	if e.cmd != nil {
		e.cmd.Process.Kill()
		<-e.exited
		e.cmd, e.exited = nil, nil
	}
}

// relay accepts on Endpoint and copies each connection to and from etcd.
func (e *Etcd) relay() {
	for {
		c, err := e.front.Accept()
		if err != nil {
			return
		}
		go e.pipe(c)
	}
}

func (e *Etcd) pipe(c net.Conn) {
	defer c.Close()
	e.mu.Lock()
	up := e.upstream
	e.mu.Unlock()
	if up == "" {
		return // stopped: as good as refused
	}
	u, err := net.Dial("tcp", up)
	if err != nil {
		return
	}
	defer u.Close()
	e.mu.Lock()
	if e.upstream != up { // stopped meanwhile
		e.mu.Unlock()
		return
	}
	e.conns[c], e.conns[u] = struct{}{}, struct{}{}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.conns, c)
		delete(e.conns, u)
		e.mu.Unlock()
	}()
	done := make(chan struct{})
	go func() {
		io.Copy(u, c)
		u.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, u)
	c.(*net.TCPConn).CloseWrite()
	<-done
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
