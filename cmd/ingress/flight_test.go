//go:build demoflight

package main

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/neo4j/private-ingress/internal/demo"
)

// TestArrowFlightThroughTheIngress is a GDS Arrow Flight client on the arrow
// service: TLS with ALPN h2 (grpc-go refuses a connection without it), the
// name routed by SNI, the data read back from the instance behind it.
func TestArrowFlightThroughTheIngress(t *testing.T) {
	addrs, _ := startDemo(t)
	roots := demoRoots(t, addrs)
	for _, dbid := range demo.DBIDs() {
		t.Run(dbid, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			creds := credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: dbid + ".production-orch-0000.neo4j.io"})
			c, err := flight.NewClientWithMiddleware(addrs["arrow"], nil, nil, grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			list, err := c.ListFlights(ctx, &flight.Criteria{})
			if err != nil {
				t.Fatalf("ListFlights: %v", err)
			}
			first, err := list.Recv()
			if err != nil || first.FlightDescriptor.Path[0] != dbid {
				t.Fatalf("ListFlights: %v, %v", first, err)
			}
			info, err := c.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{dbid, "nodes"}})
			if err != nil {
				t.Fatalf("GetFlightInfo: %v", err)
			}
			stream, err := c.DoGet(ctx, info.Endpoint[0].Ticket)
			if err != nil {
				t.Fatalf("DoGet: %v", err)
			}
			rdr, err := flight.NewRecordReader(stream)
			if err != nil {
				t.Fatalf("reading the stream: %v", err)
			}
			defer rdr.Release()
			var rows int
			for rdr.Next() {
				rec := rdr.RecordBatch()
				inst := rec.Column(2).(*array.String)
				for i := range int(rec.NumRows()) {
					if inst.Value(i) != dbid {
						t.Errorf("row %d comes from %q, want %s", i, inst.Value(i), dbid)
					}
				}
				rows += int(rec.NumRows())
			}
			if rows != 3 {
				t.Errorf("read %d rows, want 3", rows)
			}
		})
	}
}
