//go:build demoflight

package demo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/loopback"
)

// startFlight serves a FlightServer for dbid on 127.0.0.1:0, allocating from
// a checked allocator that must be empty once the server has stopped.
func startFlight(t *testing.T, dbid string) string {
	t.Helper()
	ln := loopback.Listen(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	s := NewFlight(dbid)
	s.mem = mem
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve after Stop = %v, want nil", err)
			}
		case <-time.After(testenv.WaitTimeout):
			t.Error("Serve did not return after Stop")
		}
		mem.AssertSize(t, 0)
	})
	return ln.Addr().String()
}

func flightClient(t *testing.T, addr string, creds credentials.TransportCredentials) flight.Client {
	t.Helper()
	c, err := flight.NewClientWithMiddleware(addr, nil, nil, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exerciseFlight checks ListFlights, GetFlightInfo, DoGet and NotFound for
// the server of instance dbid behind c.
func exerciseFlight(t *testing.T, c flight.Client, dbid string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	defer cancel()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	checkListFlights(t, ctx, c, dbid)
	tkt := checkGetFlightInfo(t, ctx, c, dbid, mem)
	checkDoGet(t, ctx, c, dbid, tkt, mem)
	checkFlightNotFound(t, ctx, c, dbid, mem)
}

// checkListFlights: exactly one flight, path [dbid, nodes].
func checkListFlights(t *testing.T, ctx context.Context, c flight.Client, dbid string) {
	ls, err := c.ListFlights(ctx, &flight.Criteria{})
	if err != nil {
		t.Fatalf("ListFlights: %v", err)
	}
	var listed []*flight.FlightInfo
	for {
		fi, err := ls.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("ListFlights recv: %v", err)
		}
		listed = append(listed, fi)
	}
	if len(listed) != 1 {
		t.Fatalf("ListFlights returned %d flights, want 1", len(listed))
	}
	desc := listed[0].GetFlightDescriptor()
	if got := desc.GetPath(); len(got) != 2 || got[0] != dbid || got[1] != "nodes" || desc.GetType() != flight.DescriptorPATH {
		t.Fatalf("listed descriptor = %v %v, want PATH [%s nodes]", desc.GetType(), got, dbid)
	}
}

// checkGetFlightInfo: schema, one endpoint with ticket dbid/nodes, 3
// records. It returns the endpoint's ticket.
func checkGetFlightInfo(t *testing.T, ctx context.Context, c flight.Client, dbid string, mem memory.Allocator) *flight.Ticket {
	info, err := c.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{dbid, "nodes"}})
	if err != nil {
		t.Fatalf("GetFlightInfo: %v", err)
	}
	if info.GetTotalRecords() != 3 {
		t.Errorf("total_records = %d, want 3", info.GetTotalRecords())
	}
	schema, err := flight.DeserializeSchema(info.GetSchema(), mem)
	if err != nil {
		t.Fatalf("DeserializeSchema: %v", err)
	}
	if !schema.Equal(flightSchema) {
		t.Errorf("schema = %v, want %v", schema, flightSchema)
	}
	if len(info.GetEndpoint()) != 1 {
		t.Fatalf("%d endpoints, want 1", len(info.GetEndpoint()))
	}
	tkt := info.GetEndpoint()[0].GetTicket()
	if got := string(tkt.GetTicket()); got != dbid+"/nodes" {
		t.Errorf("ticket = %q, want %q", got, dbid+"/nodes")
	}
	return tkt
}

// checkDoGet: one batch of 3 rows.
func checkDoGet(t *testing.T, ctx context.Context, c flight.Client, dbid string, tkt *flight.Ticket, mem memory.Allocator) {
	stream, err := c.DoGet(ctx, tkt)
	if err != nil {
		t.Fatalf("DoGet: %v", err)
	}
	rdr, err := flight.NewRecordReader(stream, ipc.WithAllocator(mem))
	if err != nil {
		t.Fatalf("NewRecordReader: %v", err)
	}
	type row struct {
		id             int64
		name, instance string
	}
	var rows []row
	batches := 0
	for rdr.Next() {
		batches++
		rec := rdr.RecordBatch()
		ids := rec.Column(0).(*array.Int64)
		names := rec.Column(1).(*array.String)
		insts := rec.Column(2).(*array.String)
		for i := 0; i < int(rec.NumRows()); i++ {
			rows = append(rows, row{ids.Value(i), names.Value(i), insts.Value(i)})
		}
	}
	if err := rdr.Err(); err != nil {
		t.Errorf("reading DoGet stream: %v", err)
	}
	if !rdr.Schema().Equal(flightSchema) {
		t.Errorf("DoGet schema = %v", rdr.Schema())
	}
	rdr.Release()
	want := []row{{1, "Alice", dbid}, {2, "Bob", dbid}, {3, "Carol", dbid}}
	if batches != 1 || len(rows) != len(want) {
		t.Fatalf("DoGet: %d batches, rows %v; want 1 batch, rows %v", batches, rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d = %v, want %v", i, rows[i], want[i])
		}
	}
}

// checkFlightNotFound: an unknown ticket or descriptor is NotFound.
func checkFlightNotFound(t *testing.T, ctx context.Context, c flight.Client, dbid string, mem memory.Allocator) {
	// Unknown ticket: NotFound (surfaces on the first Recv).
	stream, err := c.DoGet(ctx, &flight.Ticket{Ticket: []byte("other/nodes")})
	if err == nil {
		_, err = flight.NewRecordReader(stream, ipc.WithAllocator(mem))
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("DoGet unknown ticket: err = %v, want NotFound", err)
	}

	// Unknown descriptor: NotFound.
	_, err = c.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"other", "nodes"}})
	if status.Code(err) != codes.NotFound {
		t.Errorf("GetFlightInfo unknown descriptor: err = %v, want NotFound", err)
	}
	_, err = c.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte(dbid)})
	if status.Code(err) != codes.NotFound {
		t.Errorf("GetFlightInfo CMD descriptor: err = %v, want NotFound", err)
	}
}

func TestFlightPlain(t *testing.T) {
	addr := startFlight(t, "abcd1234")
	c := flightClient(t, addr, insecure.NewCredentials())
	exerciseFlight(t, c, "abcd1234")
}

func TestFlightStopBeforeServe(t *testing.T) {
	ln := loopback.Listen(t)
	s := NewFlight("abcd1234")
	s.Stop()
	if err := s.Serve(ln); err != nil {
		t.Errorf("Serve after Stop = %v, want nil", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("listener still open after Serve returned")
	}
}

const flightTestHost = "abcd1234.flight.test"

// selfSigned returns a certificate for flightTestHost and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: flightTestHost},
		DNSNames:              []string{flightTestHost},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// terminator is a tiny TLS terminator: it accepts TLS on 127.0.0.1:0 and
// splices the decrypted bytes to backend over plain TCP, as the ingress does.
type terminator struct {
	ln         net.Listener
	backend    string
	wg         sync.WaitGroup
	mu         sync.Mutex
	conns      map[net.Conn]bool
	negotiated []string // ALPN protocol of each completed handshake
}

func startTerminator(t *testing.T, backend string, cert tls.Certificate, nextProtos []string) *terminator {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   nextProtos,
	})
	if err != nil {
		t.Fatal(err)
	}
	tm := &terminator{ln: ln, backend: backend, conns: map[net.Conn]bool{}}
	tm.wg.Add(1)
	go tm.accept()
	t.Cleanup(func() {
		ln.Close()
		tm.mu.Lock()
		for c := range tm.conns {
			c.Close()
		}
		tm.mu.Unlock()
		tm.wg.Wait()
	})
	return tm
}

func (tm *terminator) track(c net.Conn) bool {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if tm.conns == nil {
		return false
	}
	tm.conns[c] = true
	return true
}

func (tm *terminator) accept() {
	defer tm.wg.Done()
	for {
		c, err := tm.ln.Accept()
		if err != nil {
			tm.mu.Lock()
			for c := range tm.conns {
				c.Close()
			}
			tm.conns = nil // refuse to track more
			tm.mu.Unlock()
			return
		}
		tm.track(c)
		tm.wg.Add(1)
		go tm.splice(c.(*tls.Conn))
	}
}

func (tm *terminator) splice(c *tls.Conn) {
	defer tm.wg.Done()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	err := c.HandshakeContext(ctx)
	cancel()
	if err != nil {
		return
	}
	tm.mu.Lock()
	tm.negotiated = append(tm.negotiated, c.ConnectionState().NegotiatedProtocol)
	tm.mu.Unlock()

	b, err := net.Dial("tcp", tm.backend)
	if err != nil {
		return
	}
	defer b.Close()
	if !tm.track(b) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, c); done <- struct{}{} }()
	go func() { io.Copy(c, b); done <- struct{}{} }()
	<-done // either side gone: close both, which ends the other copy
	c.Close()
	b.Close()
	<-done
}

func (tm *terminator) protocols() []string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return append([]string(nil), tm.negotiated...)
}

func TestFlightThroughTLSTerminator(t *testing.T) {
	backend := startFlight(t, "abcd1234")
	cert, pool := selfSigned(t)
	tm := startTerminator(t, backend, cert, []string{"h2"})

	creds := credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: flightTestHost})
	c := flightClient(t, tm.ln.Addr().String(), creds)
	exerciseFlight(t, c, "abcd1234")

	protos := tm.protocols()
	if len(protos) == 0 {
		t.Fatal("no TLS connection reached the terminator")
	}
	for _, p := range protos {
		if p != "h2" {
			t.Errorf("negotiated ALPN %q, want h2", p)
		}
	}
}

func TestFlightTLSWithoutALPNFails(t *testing.T) {
	backend := startFlight(t, "abcd1234")
	cert, pool := selfSigned(t)
	tm := startTerminator(t, backend, cert, nil) // offers no ALPN

	creds := credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: flightTestHost})
	c := flightClient(t, tm.ln.Addr().String(), creds)
	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	defer cancel()
	_, err := c.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"abcd1234", "nodes"}})
	if err == nil {
		t.Fatal("GetFlightInfo through a terminator without ALPN succeeded; want failure")
	}
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "ALPN") {
		t.Errorf("err = %v; want Unavailable mentioning ALPN", err)
	}
	t.Logf("expected failure: %v", err)
	// The TLS handshake itself completed (the terminator may record it a
	// moment after the client gave up); it is grpc-go that refused it.
	testenv.WaitFor(t, "a TLS handshake completed at the terminator", func() bool { return len(tm.protocols()) > 0 })
	protos := tm.protocols()
	for _, p := range protos {
		if p != "" {
			t.Errorf("terminator negotiated ALPN %q, want none", p)
		}
	}
}
