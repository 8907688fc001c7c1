package ingress

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/neo4j/private-ingress/internal/testenv/loopback"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// TestTLSReadBuffersFound: this toolchain's tls.Conn has the read buffers
// that parking gives back. If a Go upgrade fails it, nothing breaks, but
// idle connections cost about 4 KiB more until tlsbuffers.go follows
// crypto/tls.
func TestTLSReadBuffersFound(t *testing.T) {
	if !tlsBuffers.found {
		t.Fatalf("tls.Conn has no rawInput, input and hand fields of the expected types: %+v", tlsBuffers)
	}
}

// TestReleasedTLSConnReadsOn: a tls.Conn whose read buffers were given
// back after large records reads the next ones as before; one that holds
// part of a record keeps it, and the record completes.
func TestReleasedTLSConnReadsOn(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			client, server, clientRaw, stall := tlsPair(t, version)
			payload := bytes.Repeat([]byte("0123456789abcdef"), 40<<10/16) // three records

			sendAndRead(t, client, server, payload)
			if !tlsBuffers.release(server) {
				t.Fatal("release refused a tls.Conn with nothing buffered")
			}
			if raw, hand := readBufferCaps(server); raw != 0 || hand != 0 {
				t.Fatalf("after release: rawInput holds %d bytes, hand %d; want 0", raw, hand)
			}
			sendAndRead(t, client, server, payload)
			tlsBuffers.release(server)

			// Half a record arrives, and the read stops there (as at a
			// read deadline): what it holds must stay.
			record := sealRecord(t, client, clientRaw, []byte("after the stall"))
			clientRaw.Write(record[:len(record)/2])
			stall.Store(true)
			if _, err := server.Read(make([]byte, 64)); !isTimeout(err) {
				t.Fatalf("read of half a record: %v, want a timeout", err)
			}
			if tlsBuffers.release(server) {
				t.Fatal("release dropped half a record")
			}
			stall.Store(false)
			clientRaw.Write(record[len(record)/2:])
			got := make([]byte, len("after the stall"))
			if _, err := io.ReadFull(server, got); err != nil || string(got) != "after the stall" {
				t.Fatalf("the completed record: %q, %v", got, err)
			}
		})
	}
}

// tlsPair returns the two ends of a TLS connection over loopback TCP, the
// client's socket, and a switch that makes the server's socket report a
// timeout instead of waiting for more once it has read something.
func tlsPair(t *testing.T, version uint16) (client, server *tls.Conn, clientRaw net.Conn, stall *atomic.Bool) {
	t.Helper()
	files, err := tlsconfig.WriteDevCerts(t.TempDir(), []string{"pair.test"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(files.CA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)

	ln := loopback.Listen(t)
	defer ln.Close()
	clientRaw, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	serverRaw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	stall = new(atomic.Bool)
	server = tls.Server(&stallingConn{Conn: serverRaw, stall: stall}, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version})
	client = tls.Client(&heldConn{Conn: clientRaw}, &tls.Config{ServerName: "pair.test", RootCAs: roots})
	t.Cleanup(func() { client.Close(); server.Close() })
	done := make(chan error, 1)
	go func() { done <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return client, server, clientRaw, stall
}

// sendAndRead sends payload from client and reads it whole at server.
func sendAndRead(t *testing.T, client, server *tls.Conn, payload []byte) {
	t.Helper()
	wrote := make(chan error, 1)
	go func() { _, err := client.Write(payload); wrote <- err }()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read %d bytes (equal: %v), %v", len(got), bytes.Equal(got, payload), err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

// sealRecord returns the record client makes of data, without sending it.
func sealRecord(t *testing.T, client *tls.Conn, clientRaw net.Conn, data []byte) []byte {
	t.Helper()
	held := client.NetConn().(*heldConn)
	held.hold = true
	defer func() { held.hold, held.held = false, nil }()
	if _, err := client.Write(data); err != nil {
		t.Fatal(err)
	}
	return held.held
}

// heldConn keeps what is written while hold is set, instead of sending it.
// Only the test's goroutine writes while it is set.
type heldConn struct {
	net.Conn
	hold bool
	held []byte
}

func (c *heldConn) Write(b []byte) (int, error) {
	if c.hold {
		c.held = append(c.held, b...)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// stallingConn reports a timeout instead of waiting, while stall is set,
// once a read has returned something: the state a read deadline leaves
// mid-record, without racing a clock.
type stallingConn struct {
	net.Conn
	stall  *atomic.Bool
	gotAny bool
}

func (c *stallingConn) Read(b []byte) (int, error) {
	if c.stall.Load() && c.gotAny {
		c.gotAny = false
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.Conn.Read(b)
	c.gotAny = n > 0 && c.stall.Load()
	return n, err
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// readBufferCaps is what c's rawInput and hand buffers hold on to.
func readBufferCaps(c *tls.Conn) (rawInput, hand int) {
	base := unsafe.Pointer(c)
	return (*bytes.Buffer)(unsafe.Add(base, tlsBuffers.rawInput)).Cap(), (*bytes.Buffer)(unsafe.Add(base, tlsBuffers.hand)).Cap()
}
