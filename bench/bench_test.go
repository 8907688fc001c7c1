package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/testenv/loopback"
	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"
)

const sni = "abcd1234.production-orch-0000.neo4j.io"

// rig is a running ingress: sni reaches an echo backend through echo, a
// sink (reads and discards) through sink, a source (writes 64 KiB chunks
// until the connection ends) through source.
type rig struct {
	echo, sink, source string
	client             *tls.Config
	srv                *ingress.Server
}

// setup runs an ingress whose bolt service routes sni to the echo backend,
// https to the sink and arrow to the source.
func setup(b *testing.B, mods ...func(*ingress.Config)) rig {
	b.Helper()
	dir := b.TempDir()
	files, err := tlsconfig.WriteDevCerts(dir, []string{"*.production-orch-0000.neo4j.io"})
	if err != nil {
		b.Fatal(err)
	}
	echo := serveTCP(b, func(c net.Conn) { io.Copy(c, c) })
	sink := serveTCP(b, func(c net.Conn) { io.Copy(io.Discard, c) })
	chunk := make([]byte, 64<<10)
	source := serveTCP(b, func(c net.Conn) {
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	ns := routing.Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}}
	table, err := routing.Parse("routes.yaml", []byte(fmt.Sprintf(`
instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {bolt: [%q], https: [%q], arrow: [%q]}}
`, echo, sink, source)), ns, nil)
	if err != nil {
		b.Fatal(err)
	}
	var routes routing.Holder
	routes.Store(table)
	certs := tlsconfig.NewStore(nil, nil)
	b.Cleanup(certs.Close)
	if err := certs.SetFiles(context.Background(), []tlsconfig.CertFiles{{Cert: files.Cert, Key: files.Key}}); err != nil {
		b.Fatal(err)
	}
	cfg := ingress.Config{
		Listeners: []ingress.ListenerConfig{
			{Service: "bolt", Address: "127.0.0.1:0"},
			{Service: "https", Address: "127.0.0.1:0"},
			{Service: "arrow", Address: "127.0.0.1:0", ALPN: []string{}},
		},
		Limits:   ingress.Limits{MaxConnections: 100000},
		Timeouts: ingress.Timeouts{Park: ingress.DefaultParkAfter}, // as ingress.yaml's default
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	srv, err := ingress.New(cfg, ingress.Options{Routes: &routes, Certs: certs})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Listen(context.Background()); err != nil {
		b.Fatal(err)
	}
	go srv.Serve()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	caPEM, _ := os.ReadFile(files.CA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return rig{echo: srv.Addr("bolt").String(), sink: srv.Addr("https").String(), source: srv.Addr("arrow").String(),
		client: &tls.Config{ServerName: sni, RootCAs: pool}, srv: srv}
}

func serveTCP(b *testing.B, handle func(net.Conn)) string {
	b.Helper()
	return loopback.Serve(b, loopback.Listen(b), func(c net.Conn) { defer c.Close(); handle(c) })
}

// BenchmarkHandshake is one full connection: TCP connect, TLS handshake
// (no resumption), a 64-byte echo through the backend, close.
func BenchmarkHandshake(b *testing.B) {
	for _, v := range []struct {
		name    string
		version uint16
	}{{"TLS1.3", tls.VersionTLS13}, {"TLS1.2", tls.VersionTLS12}} {
		b.Run(v.name, func(b *testing.B) {
			r := setup(b)
			addr, cfg := r.echo, r.client.Clone()
			cfg.MinVersion, cfg.MaxVersion = v.version, v.version
			cfg.ClientSessionCache = nil
			msg := make([]byte, 64)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 64)
				for pb.Next() {
					c, err := tls.Dial("tcp", addr, cfg)
					if err != nil {
						b.Error(err)
						return
					}
					c.Write(msg)
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Error(err)
					}
					c.Close()
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
		})
	}
}

// BenchmarkPingPong is 64-byte request/response on established connections.
func BenchmarkPingPong(b *testing.B) {
	r := setup(b)
	addr, cfg := r.echo, r.client
	b.SetBytes(64)
	b.RunParallel(func(pb *testing.PB) {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		msg, buf := make([]byte, 64), make([]byte, 64)
		for pb.Next() {
			c.Write(msg)
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkBulkUpload streams 64 KiB writes from the client to a sink backend.
func BenchmarkBulkUpload(b *testing.B) {
	r := setup(b)
	c, err := tls.Dial("tcp", r.sink, r.client)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBulkDownload reads what a source backend streams to the client.
func BenchmarkBulkDownload(b *testing.B) {
	r := setup(b)
	c, err := tls.Dial("tcp", r.source, r.client)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWakeFromPark is one 64-byte round trip after the connection
// has been idle: "parked" waits until both directions have parked
// (timeouts.park 1 ms) and the wake-up goes through the parker's epoll set
// and fresh goroutines; "idle" never parks but waits as long before each
// round trip, so both pay the same cold caches and sleeping cores and the
// difference is what parking adds; "hot" is back-to-back round trips.
// Each round trip is timed alone; p50 and p99 are reported.
//
//	go test -run '^$' -bench WakeFromPark -benchtime 2000x ./bench
func BenchmarkWakeFromPark(b *testing.B) {
	const gap = 2 * time.Millisecond // idle before each timed round trip
	for _, v := range []struct {
		name string
		park time.Duration
		gap  time.Duration
	}{{"parked", time.Millisecond, gap}, {"idle", 0, gap}, {"hot", 0, 0}} {
		b.Run(v.name, func(b *testing.B) {
			r := setup(b, func(c *ingress.Config) { c.Timeouts.Park = v.park })
			c, err := tls.Dial("tcp", r.echo, r.client)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg, buf := make([]byte, 64), make([]byte, 64)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				// The idle gap is the workload, not a synchronisation:
				// parking is waited for as the event it is.
				for since := time.Now(); time.Since(since) < v.gap || v.park > 0 && r.srv.Parked() != 1; {
					runtime.Gosched()
				}
				b.StartTimer()
				start := time.Now()
				c.Write(msg)
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-µs")
		})
	}
}
