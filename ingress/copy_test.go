package ingress

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/neo4j/private-ingress/internal/testenv/loopback"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// BenchmarkCopy is the copy loop alone, on loopback: backend to client
// (plain TCP in, TLS out) and client to backend (TLS in, plain TCP out),
// 64 KiB writes at the far end, what a bulk transfer does per direction.
func BenchmarkCopy(b *testing.B) {
	dir := b.TempDir()
	files, err := tlsconfig.WriteDevCerts(dir, []string{"bench.test"})
	if err != nil {
		b.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		b.Fatal(err)
	}
	server := &tls.Config{Certificates: []tls.Certificate{pair}}
	client := &tls.Config{InsecureSkipVerify: true}

	// tcpPair returns both ends of a loopback TCP connection.
	tcpPair := func() (net.Conn, net.Conn) {
		ln := loopback.Listen(b)
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			accepted <- c
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		return c, <-accepted
	}
	tlsPair := func() (*tls.Conn, *tls.Conn) {
		c, s := tcpPair()
		tc, ts := tls.Client(c, client), tls.Server(s, server)
		var wg sync.WaitGroup
		wg.Go(func() { ts.Handshake() })
		if err := tc.Handshake(); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
		return tc, ts
	}
	run := func(b *testing.B, far io.Writer, farClose func(), deadlines net.Conn, dst io.Writer, src io.Reader, pool *sync.Pool) {
		chunk := make([]byte, 64<<10)
		b.SetBytes(int64(len(chunk)))
		b.ReportAllocs()
		go func() {
			for range b.N {
				if _, err := far.Write(chunk); err != nil {
					return
				}
			}
			farClose()
		}()
		p := &pipe{}
		err := p.copy(up, deadlines, dst, src, pool, func() error { return nil })
		if n := p.n[up]; err != nil || n != int64(b.N)*int64(len(chunk)) {
			b.Fatalf("copied %d, %v", p.n[up], err)
		}
	}

	b.Run("backend-to-client", func(b *testing.B) {
		backendFar, backend := tcpPair()
		clientFar, clientNear := tlsPair()
		go io.Copy(io.Discard, clientFar)
		defer clientNear.Close()
		run(b, backendFar, func() { backendFar.Close() }, backend, clientNear, backend, &burstPool)
	})
	b.Run("client-to-backend", func(b *testing.B) {
		clientFar, clientNear := tlsPair()
		backend, backendFar := tcpPair()
		go io.Copy(io.Discard, backendFar)
		defer backend.Close()
		run(b, clientFar, func() { clientFar.CloseWrite(); clientFar.NetConn().(*net.TCPConn).CloseWrite() }, clientNear.NetConn(), backend, clientNear, &recordPool)
	})
}
