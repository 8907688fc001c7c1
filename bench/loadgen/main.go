// Command loadgen is the comparison harness's load generator and backends
// (bench/compare/run.sh): the same load against any TLS-terminating proxy,
// loopback only.
//
//	loadgen backends -echo N                 greet-then-echo, sink and source backends
//	loadgen check    -addr A -dbids N        every dbid reaches its own backend
//	loadgen handshakes -addr A -tls 1.3 [-resume] [-workers 16] [-duration 10s]
//	loadgen bulk     -addr A -dir up|down [-conns 4]
//	loadgen pingpong -addr A [-conns 16]
//	loadgen idle     -addr A -conns 5000 -hold 5s
//
// Each load prints one line: the figure first, then its unit and details.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen backends|check|handshakes|bulk|pingpong|idle [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:7687", "the proxy's TLS address")
	ca := fs.String("ca", "ca.pem", "the CA that signed the proxy's leaves")
	version := fs.String("tls", "1.3", "TLS version: 1.2 or 1.3")
	resume := fs.Bool("resume", false, "resume sessions (tickets) instead of full handshakes")
	workers := fs.Int("workers", 16, "concurrent clients")
	conns := fs.Int("conns", 16, "connections")
	duration := fs.Duration("duration", 10*time.Second, "how long to load")
	dir := fs.String("dir", "up", "bulk direction: up (client to backend) or down")
	dbids := fs.Int("dbids", 1000, "dbids in the routing map")
	echoes := fs.Int("echo", 4, "echo backends")
	hold := fs.Duration("hold", 5*time.Second, "how long idle connections are held")
	fs.Parse(os.Args[2:])
	if os.Args[1] == "backends" {
		backends(*echoes)
		return
	}
	pem, err := os.ReadFile(*ca)
	if err != nil {
		fail(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	if os.Args[1] != "check" {
		// Chain verification is memoized per leaf, so that x509 path
		// building in every handshake does not make this core, rather than
		// the proxy's, the limit. Every handshake still verifies the
		// server's signature with the leaf (crypto/tls does), and every
		// leaf is verified against the CA once, and the name every time.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = (&leafCache{roots: roots}).verify
	}
	if *version == "1.2" {
		cfg.MaxVersion = tls.VersionTLS12
	}
	l := &load{addr: *addr, cfg: cfg}
	switch os.Args[1] {
	case "check":
		l.check(*dbids, *echoes)
	case "handshakes":
		l.handshakes(*workers, *duration, *resume)
	case "bulk":
		l.bulk(*conns, *duration, *dir)
	case "pingpong":
		l.pingpong(*conns, *duration)
	case "idle":
		l.idle(*conns, *hold)
	default:
		fail(fmt.Errorf("unknown load %q", os.Args[1]))
	}
}

// leafCache verifies each distinct leaf's chain once.
type leafCache struct {
	roots    *x509.CertPool
	verified sync.Map // string(leaf DER) → struct{}
}

func (lc *leafCache) verify(cs tls.ConnectionState) error {
	leaf := cs.PeerCertificates[0]
	if _, ok := lc.verified.Load(string(leaf.Raw)); !ok {
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: lc.roots, Intermediates: inter}); err != nil {
			return err
		}
		lc.verified.Store(string(leaf.Raw), struct{}{})
	}
	return leaf.VerifyHostname(cs.ServerName)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}

// Names: dbid i is db<i>, routed to echo backend i mod N; "sink" and
// "source" name the bulk backends.
func fqdn(dbid string) string { return dbid + ".production-orch-0000.neo4j.io" }
func dbid(i int) string       { return fmt.Sprintf("db%04d", i) }

// backends serves N greet-then-echo backends, a sink and a source on
// ephemeral loopback ports, prints their addresses on one line (echo...,
// sink, source), and serves until killed.
func backends(n int) {
	var addrs []string
	listen := func(handle func(net.Conn)) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fail(err)
		}
		addrs = append(addrs, ln.Addr().String())
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); handle(c) }()
			}
		}()
	}
	for i := range n {
		name := "echo" + strconv.Itoa(i)
		listen(func(c net.Conn) { fmt.Fprintf(c, "%s\n", name); io.Copy(c, c) })
	}
	listen(func(c net.Conn) { io.Copy(io.Discard, c) })
	chunk := make([]byte, 64<<10)
	listen(func(c net.Conn) {
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	fmt.Println(strings.Join(addrs, " "))
	select {}
}

type load struct {
	addr string
	cfg  *tls.Config
}

func (l *load) dial(name string, cache tls.ClientSessionCache) (*tls.Conn, error) {
	cfg := l.cfg.Clone()
	cfg.ServerName = fqdn(name)
	cfg.ClientSessionCache = cache
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", l.addr, cfg)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return c, nil
}

// greeted dials dbid and reads its backend's greeting.
func (l *load) greeted(name string, cache tls.ClientSessionCache) (*tls.Conn, *bufio.Reader, string, error) {
	c, err := l.dial(name, cache)
	if err != nil {
		return nil, nil, "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, nil, "", err
	}
	return c, r, line[:len(line)-1], nil
}

func (l *load) check(dbids, echoes int) {
	for i := range dbids {
		c, _, got, err := l.greeted(dbid(i), nil)
		if err != nil {
			fail(fmt.Errorf("%s: %w", dbid(i), err))
		}
		c.Close()
		if want := "echo" + strconv.Itoa(i%echoes); got != want {
			fail(fmt.Errorf("%s reached %s, want %s", dbid(i), got, want))
		}
	}
	fmt.Printf("%d dbids routed to their own backends\n", dbids)
}

// handshakes: each worker loops connect, handshake, 64-byte echo, close.
func (l *load) handshakes(workers int, d time.Duration, resume bool) {
	var done, failed atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	msg := make([]byte, 64)
	for w := range workers {
		wg.Go(func() {
			var cache tls.ClientSessionCache
			if resume {
				cache = tls.NewLRUClientSessionCache(1)
			}
			buf := make([]byte, 64)
			for i := 0; time.Now().Before(deadline); i++ {
				name := dbid((w*131 + i) % 1000)
				if resume {
					name = dbid(w) // sessions are cached by server name
				}
				c, r, _, err := l.greeted(name, cache)
				if err == nil {
					_, err = c.Write(msg)
					if err == nil {
						_, err = io.ReadFull(r, buf)
					}
					if resume && err == nil && i > 0 && !c.ConnectionState().DidResume {
						err = fmt.Errorf("not resumed")
					}
					c.Close()
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("%.0f handshakes/s (%d done, %d failed)\n", float64(done.Load())/d.Seconds(), done.Load(), failed.Load())
}

// bulk streams 64 KiB writes for d on conns connections, up to the sink or
// down from the source.
func (l *load) bulk(conns int, d time.Duration, dir string) {
	var total atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for range conns {
		wg.Go(func() {
			name := "sink"
			if dir == "down" {
				name = "source"
			}
			c, err := l.dial(name, nil)
			if err != nil {
				fail(err)
			}
			defer c.Close()
			c.SetDeadline(deadline)
			buf := make([]byte, 64<<10)
			for time.Now().Before(deadline) {
				var n int
				if dir == "down" {
					n, err = c.Read(buf)
				} else {
					n, err = c.Write(buf)
				}
				total.Add(int64(n))
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("%.1f MB/s %s (%d connections)\n", float64(total.Load())/d.Seconds()/1e6, dir, conns)
}

// pingpong: conns connections each doing 64-byte request/response.
func (l *load) pingpong(conns int, d time.Duration) {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for i := range conns {
		wg.Go(func() {
			c, r, _, err := l.greeted(dbid(i), nil)
			if err != nil {
				fail(err)
			}
			defer c.Close()
			msg, buf := make([]byte, 64), make([]byte, 64)
			var mine []time.Duration
			for time.Now().Before(deadline) {
				start := time.Now()
				if _, err := c.Write(msg); err != nil {
					fail(err)
				}
				if _, err := io.ReadFull(r, buf); err != nil {
					fail(err)
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(int(float64(len(lat))*p), len(lat)-1)] }
	us := func(d time.Duration) int64 { return d.Microseconds() }
	fmt.Printf("%.0f round trips/s (%d connections) p50 %d p99 %d p999 %d µs\n",
		float64(len(lat))/d.Seconds(), conns, us(q(0.5)), us(q(0.99)), us(q(0.999)))
}

// idle opens conns connections (handshake and one echo each), holds them
// for hold, then checks each still works.
func (l *load) idle(conns int, hold time.Duration) {
	open := make([]*tls.Conn, 0, conns)
	readers := make([]*bufio.Reader, 0, conns)
	for i := range conns {
		c, r, _, err := l.greeted(dbid(i%1000), nil)
		if err != nil {
			fail(fmt.Errorf("connection %d: %w", i, err))
		}
		open, readers = append(open, c), append(readers, r)
	}
	fmt.Printf("%d connections open\n", conns)
	time.Sleep(hold)
	buf := make([]byte, 4)
	for i, c := range open {
		c.Write([]byte("ping"))
		if _, err := io.ReadFull(readers[i], buf); err != nil {
			fail(fmt.Errorf("connection %d after holding: %w", i, err))
		}
		c.Close()
	}
}
