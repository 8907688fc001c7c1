package main

// The reliability suite: the real binary under load, faults and restarts.
// Each test prints its figure and asserts the behaviour. Sizes are modest
// for CI; -chaos.scale multiplies them.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/tlsconfig"

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/loopback"
)

var chaosScale = flag.Int("chaos.scale", 1, "multiply the reliability suite's sizes")

// chaosIngress is the binary serving one config, with its log in a file
// (a pipe would stay open in a process it hands over to).
type chaosIngress struct {
	t          *testing.T
	cmd        *exec.Cmd
	dir, log   string
	bolt       string // the bolt listener's address
	admin      string
	addrs      map[string]string // every bound address, from the start-up line
	roots      *x509.CertPool
	routesPath string
	exited     chan error
}

// startChaosIngress runs `ingress serve` with a bolt listener, the routes
// file routes, and extra config appended; wrap, if given, is a command
// that runs it (prlimit, say).
func startChaosIngress(t *testing.T, routes string, extra string, wrap ...string) *chaosIngress {
	t.Helper()
	testenv.External(t)
	bin := ingressBin.Path(t)
	dir := t.TempDir()
	files, err := tlsconfig.WriteDevCerts(dir, []string{"*.production-orch-0000.neo4j.io"})
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(files.CA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c := &chaosIngress{t: t, dir: dir, roots: roots,
		routesPath: filepath.Join(dir, "routes.yaml"), log: filepath.Join(dir, "ingress.log"), exited: make(chan error, 1)}
	writeRoutes(t, c.routesPath, routes)
	// Ports chosen by the kernel, read back from the log. The bolt listener
	// and the admin server share a configured address: a hand-over must
	// still pass each socket on to its own part.
	// Connections park (give up their goroutines) after 10 ms of quiet,
	// not 2 s: every chaos test has parked connections woken, drained,
	// handed over and cut, as well as busy ones.
	if strings.Contains(extra, "timeouts: {") {
		extra = strings.Replace(extra, "timeouts: {", "timeouts: {park: 10ms, ", 1)
	} else {
		extra += "timeouts: {park: 10ms}\n"
	}
	cfg := fmt.Sprintf(`orchestras: ["0000"]
listeners: [{service: bolt, address: "127.0.0.1:0"}]
tls: {certificates: [{cert: %q, key: %q}]}
admin: {address: "127.0.0.1:0", pprof: true} # the idle test reads the heap profile
%s`, files.Cert, files.Key, extra)
	os.WriteFile(filepath.Join(dir, "ingress.yaml"), []byte(cfg), 0o644)
	logFile, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	argv := append(wrap, bin, "serve", "-config", filepath.Join(dir, "ingress.yaml"))
	c.cmd = exec.Command(argv[0], argv[1:]...)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- c.cmd.Wait() }()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		if t.Failed() {
			out, _ := os.ReadFile(c.log)
			t.Logf("ingress log:\n%s", out)
		}
	})
	c.addrs = startedAddrs(t, c.logText)
	c.bolt, c.admin = c.addrs["bolt"], c.addrs["admin"]
	testenv.WaitFor(t, "/readyz 200", func() bool { return c.readyz() == 200 })
	return c
}

// chaosRoutes routes abcd1234 to backend, plus n filler instances.
func chaosRoutes(backend string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "instances:\n  - {dbid: abcd1234, orch: \"0000\", public: true, backends: {bolt: [%q]}}\n", backend)
	for i := range n {
		fmt.Fprintf(&b, "  - {dbid: fill%04d, orch: \"0000\", public: true, backends: {bolt: [%q]}}\n", i, backend)
	}
	return b.String()
}

func (c *chaosIngress) readyz() int {
	resp, err := http.Get("http://" + c.admin + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// metric returns the value of the first sample line that starts with prefix.
func (c *chaosIngress) metric(prefix string) float64 {
	resp, err := http.Get("http://" + c.admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, prefix) {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return v
		}
	}
	return 0
}

// dial opens a TLS connection to the bolt listener for dbid.
func (c *chaosIngress) dial(dbid string) (*tls.Conn, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: testenv.WaitTimeout}, "tcp", c.bolt,
		&tls.Config{ServerName: dbid + ".production-orch-0000.neo4j.io", RootCAs: c.roots})
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	return conn, nil
}

// ping dials, writes a line and reads it back from the echo backend.
func (c *chaosIngress) ping() error {
	conn, err := c.dial("abcd1234")
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "ping\n" {
		return fmt.Errorf("echo %q: %v", line, err)
	}
	return nil
}

func (c *chaosIngress) logText() string {
	b, _ := os.ReadFile(c.log)
	return string(b)
}

// TestRestartHandsOverTheSockets: under a steady connection rate, SIGUSR2
// starts a new process on the same sockets, the old one drains and exits
// 0, and no connection attempt fails.
func TestRestartHandsOverTheSockets(t *testing.T) {
	testenv.External(t)
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), "timeouts: {drain: 10s}\n")
	var done, failures atomic.Int64
	var firstErr atomic.Pointer[error] // errors of different types: not an atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Two clients in a closed loop: each dials again as soon as its last
	// ping is answered, so the load follows the machine's speed.
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := c.ping(); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
				done.Add(1)
			}
		})
	}
	// The old process serves the load, then hands over under it.
	testenv.WaitFor(t, "the load to run against the old process", func() bool { return done.Load() >= 20 })
	start := time.Now()
	c.cmd.Process.Signal(syscall.SIGUSR2)
	select {
	case err := <-c.exited:
		if err != nil {
			t.Errorf("the old process exited with %v, want 0", err)
		}
	case <-time.After(2 * testenv.WaitTimeout): // a failure bound: the new process's start, then the drain
		t.Fatal("the old process did not exit after the hand-over")
	}
	took := time.Since(start)
	newPID := regexp.MustCompile(`"pid":(\d+)`).FindStringSubmatch(c.logText())
	if newPID == nil {
		t.Fatalf("no new process in the log")
	}
	pid, _ := strconv.Atoi(newPID[1])
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	// The new process alone serves the load for a while too.
	after := done.Load()
	testenv.WaitFor(t, "the load to run against the new process alone", func() bool { return done.Load() >= after+20 })
	close(stop)
	wg.Wait()
	t.Logf("hand-over restart: %d connection attempts, %d failed; old process gone %v after SIGUSR2",
		done.Load(), failures.Load(), took.Round(time.Millisecond))
	if failures.Load() != 0 {
		t.Errorf("%d of %d attempts failed during the hand-over; first: %v", failures.Load(), done.Load(), *firstErr.Load())
	}
	if c.readyz() != 200 {
		t.Error("the new process is not ready")
	}
	syscall.Kill(pid, syscall.SIGTERM)
}

// TestSIGTERMDrainsOpenConnections: with open connections, SIGTERM refuses
// new ones at once, turns /readyz 503, lets the open ones finish, and the
// process exits 0 within the drain timeout.
func TestSIGTERMDrainsOpenConnections(t *testing.T) {
	testenv.External(t)
	n := 500 * *chaosScale
	// The drain timeout is a failure bound here: the process must exit
	// because the connections finished, long before it.
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), "timeouts: {drain: 2m}\n")
	conns := make([]*tls.Conn, 0, n)
	for range n {
		conn, err := c.dial("abcd1234")
		if err != nil {
			t.Fatalf("opening connection %d: %v", len(conns)+1, err)
		}
		conns = append(conns, conn)
	}
	// Parked (timeouts.park is 10 ms here): no goroutine, and crypto/tls's
	// read buffers given back, as a pooled driver connection soon is.
	testenv.WaitFor(t, "the connections to park", func() bool {
		return c.metric(`ingress_parked_connections{service="bolt"}`) == float64(n)
	})
	start := time.Now()
	c.cmd.Process.Signal(syscall.SIGTERM)
	testenv.WaitFor(t, "new connections to be refused", func() bool {
		conn, err := net.DialTimeout("tcp", c.bolt, time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	refusedAfter := time.Since(start)
	if code := c.readyz(); code == 200 {
		t.Errorf("/readyz %d while draining, want 503 (or the admin server gone)", code)
	}
	// Every open connection still works, then finishes.
	for i, conn := range conns {
		conn.SetDeadline(time.Now().Add(testenv.WaitTimeout))
		fmt.Fprintf(conn, "last words %d\n", i)
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || line != fmt.Sprintf("last words %d\n", i) {
			t.Fatalf("connection %d while draining: %q, %v", i, line, err)
		}
		conn.Close()
	}
	select {
	case err := <-c.exited:
		if err != nil {
			t.Errorf("exit: %v, want 0", err)
		}
	case <-time.After(testenv.WaitTimeout): // a failure bound, well within the drain timeout
		t.Fatal("the process did not exit after its last connection closed")
	}
	t.Logf("SIGTERM with %d open connections: new ones refused after %v, all %d finished, exit 0 after %v",
		n, refusedAfter.Round(time.Millisecond), n, time.Since(start).Round(time.Millisecond))
}

// TestStreamsSurviveReloads: connections stream checksummed data both
// ways while the routes are rewritten again and again and the certificate
// once: every byte arrives and no connection is cut. Every stream runs
// from before the first reload until after the last, however slow the
// machine: it keeps going until the reloads are done.
func TestStreamsSurviveReloads(t *testing.T) {
	testenv.External(t)
	const chunk, minChunks = 4096, 64 // at least 256 KiB each way per stream
	conns := 200 * (*chaosScale)
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), "")
	backend := e2eEchoBackend(t)
	var wg sync.WaitGroup
	var failed, streaming, bytes atomic.Int64
	errs := make(chan error, conns)
	reloaded := make(chan struct{}) // closed after the last reload
	// The streams' pace: a channel closed at each reload. A stream echoes a
	// chunk, then waits for the next reload, so data crosses every reload
	// and the streams leave the reloads the CPU, whatever the speed.
	var tick atomic.Pointer[chan struct{}]
	nextTick := func() {
		ch := make(chan struct{})
		if old := tick.Swap(&ch); old != nil {
			close(*old)
		}
	}
	nextTick()
	// All connections first: the certificate swap below changes the CA.
	for i, conn := range c.dialMany(t, "abcd1234", conns) {
		wg.Go(func() {
			defer conn.Close()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			sent, echoed := sha256.New(), sha256.New()
			out, in := make([]byte, chunk), make([]byte, chunk)
			n := 0 // chunks echoed
			fail := func(err error) {
				failed.Add(1)
				errs <- fmt.Errorf("connection %d after %d chunks: %w", i, n, err)
			}
			for ; ; n++ {
				paced := *tick.Load() // before the echo: a reload during it is not missed
				if n >= minChunks {
					select {
					case <-reloaded:
						if string(sent.Sum(nil)) != string(echoed.Sum(nil)) {
							fail(errors.New("checksum mismatch"))
						}
						return
					default:
					}
				}
				for j := range out {
					out[j] = byte(rng.Uint32())
				}
				conn.SetDeadline(time.Now().Add(testenv.WaitTimeout))
				if _, err := conn.Write(out); err != nil {
					fail(err)
					return
				}
				if _, err := io.ReadFull(conn, in); err != nil {
					fail(err)
					return
				}
				sent.Write(out)
				echoed.Write(in)
				bytes.Add(2 * chunk)
				if n == 0 {
					streaming.Add(1) // one chunk through: this stream runs
				}
				select {
				case <-paced:
				case <-reloaded:
				}
			}
		})
	}
	testenv.WaitFor(t, "every stream to run", func() bool { return streaming.Load()+failed.Load() >= int64(conns) })
	// SIGHUP reloads at once; the file watcher would fold a burst of
	// writes into one reload.
	reloads := 100
	for i := range reloads {
		writeRoutes(t, c.routesPath, chaosRoutes(backend, i%7))
		before := c.metric(`ingress_config_reloads_total{result="ok"}`)
		c.cmd.Process.Signal(syscall.SIGHUP)
		testenv.WaitFor(t, "the SIGHUP reload", func() bool { return c.metric(`ingress_config_reloads_total{result="ok"}`) > before })
		nextTick()
		if i == reloads/2 {
			c.replaceCertificate(t)
		}
	}
	close(reloaded)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	reloadsSeen := c.metric(`ingress_config_reloads_total{result="ok"}`)
	t.Logf("streams under reloads: %d connections streaming throughout, %d MiB checked both ways, %d route files written (%v reloads applied) and one certificate, %d connections cut",
		conns, bytes.Load()>>20, reloads, reloadsSeen, failed.Load())
	if reloadsSeen < float64(reloads) {
		t.Errorf("only %v reloads applied, want at least %d", reloadsSeen, reloads)
	}
}

// dialMany opens n connections to dbid.
func (c *chaosIngress) dialMany(t *testing.T, dbid string, n int) []*tls.Conn {
	t.Helper()
	open := make([]*tls.Conn, n)
	for i := range open {
		conn, err := c.dial(dbid)
		if err != nil {
			t.Fatalf("opening connection %d: %v", i, err)
		}
		open[i] = conn
	}
	return open
}

// replaceCertificate swaps the ingress's certificate and key for ones from
// a new dev CA, each file by rename, as a certificate manager does.
func (c *chaosIngress) replaceCertificate(t *testing.T) {
	t.Helper()
	if _, err := tlsconfig.WriteDevCerts(filepath.Join(c.dir, "new"), []string{"*.production-orch-0000.neo4j.io"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tls.crt", "tls.key"} {
		b, _ := os.ReadFile(filepath.Join(c.dir, "new", f))
		os.WriteFile(filepath.Join(c.dir, f+".new"), b, 0o600)
		os.Rename(filepath.Join(c.dir, f+".new"), filepath.Join(c.dir, f))
	}
}

// resettingBackend echoes the first line, then resets the connection.
func resettingBackend(t *testing.T) string {
	t.Helper()
	return loopback.Serve(t, loopback.Listen(t), func(c net.Conn) {
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Write([]byte(line))
		c.(*net.TCPConn).SetLinger(0) // close with RST: the backend died
		c.Close()
	})
}

// blackHole returns a loopback address whose SYNs go unanswered: a socket
// listening with a backlog of 0 whose queue is kept full, so the kernel
// drops further SYNs and a connect hangs, as towards a vanished host.
func blackHole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 2 { // fill the queue; nothing ever accepts
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	// A probe: a kernel that answers does so at once on loopback.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Skip("this kernel accepts beyond a full backlog: no loopback black hole")
	}
	return addr
}

// refusingAddr returns a loopback address that refuses connections: a
// socket bound to it but not listening, kept open until the test ends, so
// that a connect is answered with a reset (ECONNREFUSED) and nothing else
// can take the port meanwhile, as it could a port found free and closed.
func refusingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// TestBackendFaults: a backend that resets mid-stream, one that never
// answers a SYN, and an instance whose backends are all down each get
// their outcome, counted, while another instance is served unharmed.
func TestBackendFaults(t *testing.T) {
	testenv.External(t)
	healthy, resetting, hole := e2eEchoBackend(t), resettingBackend(t), blackHole(t)
	routes := fmt.Sprintf(`instances:
  - {dbid: healthy1, orch: "0000", public: true, backends: {bolt: [%q]}}
  - {dbid: resets01, orch: "0000", public: true, backends: {bolt: [%q]}}
  - {dbid: blackhol, orch: "0000", public: true, backends: {bolt: [%q]}}
  - {dbid: alldown1, orch: "0000", public: true, backends: {bolt: [%q, %q]}}
`, healthy, resetting, hole, refusingAddr(t), refusingAddr(t))
	// dial_timeout is what ends the black-holed dial; it leaves a busy
	// machine time to connect to the healthy loopback backends.
	c := startChaosIngress(t, routes, "backend: {dial_timeout: 2s}\n")
	healthyPing := func() {
		t.Helper()
		conn, err := c.dial("healthy1")
		if err != nil {
			t.Fatalf("the healthy instance: %v", err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "ok?\n")
		if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "ok?\n" {
			t.Fatalf("the healthy instance: %q, %v", line, err)
		}
	}

	// Reset mid-stream: the ingress closes the client's side because of
	// the reset, not at a timeout: before the client's own deadline (no
	// idle timeout is set, so nothing else would close it).
	conn, err := c.dial("resets01")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "first\n")
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("before the reset: %q, %v", line, err)
	}
	start := time.Now()
	_, err = io.Copy(io.Discard, r)
	resetSeen := time.Since(start)
	conn.Close()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the client was not told of the backend's reset: still open after %v", resetSeen)
	}
	healthyPing()

	// A black-holed backend: bounded by dial_timeout, then the client is
	// closed, long before its own deadline (the kernel alone would retry
	// the SYN for about two minutes).
	for _, dbid := range []string{"blackhol", "alldown1"} {
		conn, err := c.dial(dbid)
		if err != nil {
			t.Fatalf("%s: the handshake itself must succeed: %v", dbid, err)
		}
		start := time.Now()
		n, err := io.Copy(io.Discard, conn)
		conn.Close()
		took := time.Since(start)
		if n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: %d bytes, %v after %v; want the ingress to close the connection", dbid, n, err, took)
		}
		t.Logf("%s: client closed %v after the handshake", dbid, took.Round(time.Millisecond))
		healthyPing()
	}
	testenv.WaitFor(t, "both failures counted", func() bool {
		return c.metric(`ingress_connections_total{result="backend_unavailable",service="bolt"}`) == 2
	})
	t.Logf("backend faults: reset seen by the client after %v; black hole and all-down counted as backend_unavailable (%v); dial errors %v",
		resetSeen.Round(time.Millisecond), c.metric(`ingress_connections_total{result="backend_unavailable",service="bolt"}`),
		c.metric("ingress_backend_dial_errors_total"))
}

// TestIdleFlood: thousands of connections that never send a byte, and
// clients that do the ordinary thing at the same time. The clients all
// succeed, the silent ones are closed at the handshake timeout, and the
// process comes back to its goroutine count.
func TestIdleFlood(t *testing.T) {
	testenv.External(t)
	n := 5000 * *chaosScale
	// The handshake timeout closes the silent connections; the ordinary
	// clients' handshakes must fit in it too, on a busy machine.
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), "timeouts: {handshake: 5s}\n")
	baseGoroutines := c.metric("go_goroutines ")
	baseRSS := rssKiB(c.cmd.Process.Pid)
	// The Go runtime raised the soft descriptor limit to the hard one at
	// start-up, as the ingress relies on.
	limits, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", c.cmd.Process.Pid))
	if m := regexp.MustCompile(`Max open files\s+(\d+)\s+(\d+)`).FindSubmatch(limits); m == nil || string(m[1]) != string(m[2]) {
		t.Errorf("open file limits (soft, hard) = %q, want soft raised to hard", m)
	}
	idle := make([]net.Conn, 0, n)
	for range n {
		conn, err := net.DialTimeout("tcp", c.bolt, testenv.WaitTimeout)
		if err != nil {
			t.Fatalf("opening idle connection %d: %v", len(idle)+1, err)
		}
		idle = append(idle, conn)
	}
	// Every one accepted: held, or already closed at the timeout if
	// opening them all took that long.
	testenv.WaitFor(t, "the idle connections to be accepted", func() bool {
		return c.metric(`ingress_active_connections{service="bolt"}`)+
			c.metric(`ingress_connections_total{result="handshake_error",service="bolt"}`) >= float64(n)
	})
	heldRSS, held := rssKiB(c.cmd.Process.Pid), c.metric(`ingress_active_connections{service="bolt"}`)
	for i := range 50 {
		if err := c.ping(); err != nil {
			t.Fatalf("ordinary client %d among the idle ones: %v", i, err)
		}
	}
	// The silent ones are closed by the ingress at the handshake timeout.
	start := time.Now()
	var closed int
	for _, conn := range idle {
		conn.SetReadDeadline(time.Now().Add(testenv.WaitTimeout)) // a failure bound
		if _, err := conn.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
		conn.Close()
	}
	took := time.Since(start)
	if closed != n {
		t.Errorf("%d of %d idle connections were closed by the ingress", closed, n)
	}
	var goroutines float64
	testenv.WaitFor(t, "the goroutines to return", func() bool {
		goroutines = c.metric("go_goroutines ")
		return c.metric(`ingress_active_connections{service="bolt"}`) == 0 && goroutines <= baseGoroutines+10
	})
	t.Logf("idle flood: %d silent connections (%v held at once: RSS %d → %d KiB, %.1f KiB each; %d KiB after) closed within %v of the timeout; 50 ordinary clients served meanwhile; goroutines %v → %v",
		n, held, baseRSS, heldRSS, float64(heldRSS-baseRSS)/held, rssKiB(c.cmd.Process.Pid), took.Round(time.Millisecond), baseGoroutines, goroutines)
}

func rssKiB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestOutOfFileDescriptors: with a low RLIMIT_NOFILE the ingress runs out
// of descriptors under load, keeps running (accept errors back off), and
// serves again as soon as connections close.
func TestOutOfFileDescriptors(t *testing.T) {
	testenv.External(t)
	prlimit := testenv.Command(t, "prlimit")
	const limit = 96
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), "",
		prlimit, fmt.Sprintf("--nofile=%d:%d", limit, limit), "--")
	backedOff := func() bool { return strings.Contains(c.logText(), "accept failed; backing off") }
	// Open proxied connections until one is not served. A connection the
	// ingress cannot accept waits in the kernel's queue, unanswered, for
	// as long as the others stay open: it is given up when the ingress
	// says it backs off, not at a timeout. One it accepts but cannot dial
	// a backend for is closed at once.
	var open []*tls.Conn
	var failure error
	for failure == nil {
		if len(open) == limit {
			t.Fatalf("%d proxied connections fit in %d descriptors: the limit did not bite", len(open), limit)
		}
		ctx, cancel := context.WithCancel(context.Background())
		result := make(chan error, 1)
		var conn *tls.Conn
		go func() {
			d := tls.Dialer{Config: &tls.Config{ServerName: "abcd1234.production-orch-0000.neo4j.io", RootCAs: c.roots}}
			nc, err := d.DialContext(ctx, "tcp", c.bolt)
			if err == nil {
				conn = nc.(*tls.Conn)
				conn.SetDeadline(time.Now().Add(testenv.WaitTimeout))
				fmt.Fprintf(conn, "hold\n")
				_, err = bufio.NewReader(conn).ReadString('\n')
				conn.SetDeadline(time.Time{})
			}
			result <- err
		}()
		var err error
		answered := false
		testenv.WaitFor(t, "the connection to be served or refused, or the ingress to back off", func() bool {
			select {
			case err = <-result:
				answered = true
				return true
			default:
				return backedOff()
			}
		})
		cancel()
		if !answered {
			if err = <-result; err != nil {
				err = fmt.Errorf("not accepted (%w)", err)
			}
		}
		if err != nil {
			failure = err
			if conn != nil {
				conn.Close()
			}
			break
		}
		open = append(open, conn)
	}
	select {
	case err := <-c.exited:
		t.Fatalf("the ingress died out of descriptors: %v", err)
	default:
	}
	for _, conn := range open {
		conn.Close()
	}
	// Recovery: ordinary clients again, once descriptors are free.
	testenv.WaitFor(t, "clients to be served again", func() bool { return c.ping() == nil })
	for i := range 20 {
		if err := c.ping(); err != nil {
			t.Fatalf("client %d after recovery: %v", i, err)
		}
	}
	// The failure was the limit: accepting or dialling a backend failed.
	dialErrors := c.metric("ingress_backend_dial_errors_total")
	if !backedOff() && dialErrors == 0 {
		t.Errorf("connection %d failed (%v), but the ingress neither backed off accepting nor failed to dial a backend", len(open)+1, failure)
	}
	t.Logf("out of descriptors (RLIMIT_NOFILE %d): %d connections held, then %v; served again after they closed; accept back-off logged: %v; backend dial errors: %v",
		limit, len(open), failure, backedOff(), dialErrors)
}

// TestTLSScan runs testssl.sh against a running ingress and parses its
// JSON: no finding about the server may be worse than OK or INFO, but for
// the few accepted below, each with the reason it is not a fault of the
// ingress. Findings about the scanner itself are not judged.
func TestTLSScan(t *testing.T) {
	testenv.External(t)
	testssl := testenv.Command(t, "testssl") // Debian's testssl.sh package
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), "")
	host, port, _ := net.SplitHostPort(c.bolt)
	out := filepath.Join(c.dir, "testssl.json")
	cmd := exec.Command(testssl, "--quiet", "--color", "0", "--warnings", "off", "--add-ca", filepath.Join(c.dir, "ca.pem"),
		"--jsonfile", out, "--ip", host, "abcd1234.production-orch-0000.neo4j.io:"+port)
	// Its exit status counts findings; the JSON says which.
	text, runErr := cmd.CombinedOutput()
	var findings []struct{ ID, Severity, Finding string }
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &findings); err != nil || len(findings) < 50 {
		t.Fatalf("testssl JSON (%d findings): %v (exit %v)\n%s", len(findings), err, runErr, text)
	}
	// What testssl.sh says about its own environment, whatever the server:
	// the ids it emits with fileout_insert_warning before it scans. Not
	// scanProblem (it also reports a server it cannot scan) nor scanTime
	// "Scan interrupted" (WARN): those stay judged.
	scanner := map[string]string{
		"engine_problem":  "no GOST engine in the scanner's openssl (Debian's libengine-gost-openssl, only recommended)",
		"old_fart":        "the scanner's openssl is too old to be useful",
		"too_old_openssl": "the scanner's openssl is too old",
	}
	accepted := map[string]string{
		"TLS_session_ticket": "crypto/tls fixes the ticket lifetime hint at 7 days; the keys rotate every 12 h",
		"cert_revocation":    "the dev CA's leaf names no CRL or OCSP responder; ACME certificates do",
		"DNS_CAArecord":      "no public DNS for the test name",
		"secure_renego":      "testssl's probe handshake; the ingress sends renegotiation_info and refuses renegotiation (secure_client_renego is OK)",
	}
	counts := map[string]int{}
	for _, f := range findings {
		counts[f.Severity]++
		if f.Severity == "OK" || f.Severity == "INFO" || f.Severity == "DEBUG" {
			continue
		}
		if reason, ok := scanner[f.ID]; ok {
			t.Logf("about the scanner, not judged: %s %s %q: %s", f.ID, f.Severity, f.Finding, reason)
			continue
		}
		if reason, ok := accepted[f.ID]; ok {
			t.Logf("accepted: %s %s %q: %s", f.ID, f.Severity, f.Finding, reason)
			continue
		}
		t.Errorf("testssl: %s %s: %s", f.ID, f.Severity, f.Finding)
	}
	t.Logf("testssl.sh: %d findings by severity %v", len(findings), counts)
}

// TestIdleEstablishedConnections measures what an established, idle and
// parked TLS connection costs the ingress (RSS, and live heap and
// goroutine stacks after a collection, per connection, both legs held
// open after one echo), and checks that they all wake and work afterwards. The figures
// are a report; the only bound is a ceiling far above them that a gross
// regression would cross (a buffer of tens of KiB held per idle
// connection), never a timing.
func TestIdleEstablishedConnections(t *testing.T) {
	testenv.External(t)
	const ceilingKiB = 64 // live heap and stacks per idle connection
	n := 2000 * *chaosScale
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), "")
	c.collectGarbage()
	base := rssKiB(c.cmd.Process.Pid)
	baseStack, baseHeap := c.metric("go_memstats_stack_inuse_bytes "), c.metric("go_memstats_heap_inuse_bytes ")
	conns := make([]*tls.Conn, 0, n)
	for range n {
		conn, err := c.dial("abcd1234")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "ping\n")
		if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("echo: %q, %v", line, err)
		}
		conns = append(conns, conn)
	}
	// Parked (timeouts.park is 10 ms here): no goroutine, and crypto/tls's
	// read buffers given back, as a pooled driver connection soon is.
	testenv.WaitFor(t, "the connections to park", func() bool {
		return c.metric(`ingress_parked_connections{service="bolt"}`) == float64(n)
	})
	c.collectGarbage() // the handshakes' garbage is no cost of an idle connection
	held := rssKiB(c.cmd.Process.Pid)
	stack, heap := c.metric("go_memstats_stack_inuse_bytes "), c.metric("go_memstats_heap_inuse_bytes ")
	for i, conn := range conns {
		conn.SetDeadline(time.Now().Add(testenv.WaitTimeout))
		fmt.Fprintf(conn, "again\n")
		if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "again\n" {
			t.Fatalf("connection %d after idling: %q, %v", i, line, err)
		}
		conn.Close()
	}
	stackKiB, heapKiB := (stack-baseStack)/1024/float64(n), (heap-baseHeap)/1024/float64(n)
	t.Logf("idle established TLS connections: %d held, RSS %d → %d KiB, %.1f KiB per connection (goroutine stacks %.1f KiB, live heap %.1f KiB)",
		n, base, held, float64(held-base)/float64(n), stackKiB, heapKiB)
	if stackKiB+heapKiB > ceilingKiB {
		t.Errorf("an idle connection holds %.1f KiB of heap and stacks, over the %d KiB ceiling", stackKiB+heapKiB, ceilingKiB)
	}
}

// collectGarbage has the ingress run a garbage collection, through the
// profiler on its admin address (a heap profile with gc=1).
func (c *chaosIngress) collectGarbage() {
	c.t.Helper()
	resp, err := http.Get("http://" + c.admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		c.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		c.t.Fatalf("/debug/pprof/heap?gc=1: %s", resp.Status)
	}
}
