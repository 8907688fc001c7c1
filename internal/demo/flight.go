//go:build demoflight

// The Arrow Flight fake links arrow-go and gRPC: only builds tagged
// demoflight (make run, the tests) have it; the production binary answers
// the demo's arrow service with arrow_stub.go instead.

package demo

import (
	"context"
	"errors"
	"net"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// flightSchema is the schema of the one dataset a FlightServer serves.
var flightSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "name", Type: arrow.BinaryTypes.String},
	{Name: "instance", Type: arrow.BinaryTypes.String},
}, nil)

// flightNames are the rows' names; ids are 1, 2, 3.
var flightNames = []string{"Alice", "Bob", "Carol"}

// FlightServer is a fake Arrow Flight endpoint serving one small dataset
// named after the instance.
type FlightServer struct {
	dbid string
	mem  memory.Allocator
	grpc *grpc.Server
}

// flightService is the Flight service proper; it is unexported so that
// FlightServer's method set stays NewFlight/Serve/Stop.
type flightService struct {
	flight.BaseFlightServer
	s *FlightServer
}

// NewFlight returns a server for instance dbid.
func NewFlight(dbid string) *FlightServer {
	s := &FlightServer{dbid: dbid, mem: memory.DefaultAllocator, grpc: grpc.NewServer()}
	flight.RegisterFlightServiceServer(s.grpc, &flightService{s: s})
	return s
}

// Serve serves gRPC (cleartext HTTP/2) on ln until Stop. Returns nil after Stop.
func (s *FlightServer) Serve(ln net.Listener) error {
	err := s.grpc.Serve(ln)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil // Stop came before Serve; grpc has closed ln
	}
	return err
}

// Stop stops the server.
func (s *FlightServer) Stop() { s.grpc.Stop() }

func (s *FlightServer) descriptor() *flight.FlightDescriptor {
	return &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{s.dbid, "nodes"}}
}

func (s *FlightServer) ticket() string { return s.dbid + "/nodes" }

func (s *FlightServer) info() *flight.FlightInfo {
	return &flight.FlightInfo{
		Schema:           flight.SerializeSchema(flightSchema, s.mem),
		FlightDescriptor: s.descriptor(),
		// No locations: fetch from the same service, i.e. through the ingress.
		Endpoint:     []*flight.FlightEndpoint{{Ticket: &flight.Ticket{Ticket: []byte(s.ticket())}}},
		TotalRecords: int64(len(flightNames)),
		TotalBytes:   -1,
	}
}

func (s *FlightServer) known(d *flight.FlightDescriptor) bool {
	return d != nil && d.GetType() == flight.DescriptorPATH && slices.Equal(d.GetPath(), []string{s.dbid, "nodes"})
}

func (f *flightService) ListFlights(_ *flight.Criteria, stream flight.FlightService_ListFlightsServer) error {
	return stream.Send(f.s.info())
}

func (f *flightService) GetFlightInfo(_ context.Context, d *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	if !f.s.known(d) {
		return nil, status.Errorf(codes.NotFound, "no flight %v", d.GetPath())
	}
	return f.s.info(), nil
}

func (f *flightService) GetSchema(_ context.Context, d *flight.FlightDescriptor) (*flight.SchemaResult, error) {
	if !f.s.known(d) {
		return nil, status.Errorf(codes.NotFound, "no flight %v", d.GetPath())
	}
	return &flight.SchemaResult{Schema: flight.SerializeSchema(flightSchema, f.s.mem)}, nil
}

func (f *flightService) DoGet(t *flight.Ticket, stream flight.FlightService_DoGetServer) error {
	if string(t.GetTicket()) != f.s.ticket() {
		return status.Errorf(codes.NotFound, "no ticket %q", t.GetTicket())
	}
	b := array.NewRecordBuilder(f.s.mem, flightSchema)
	defer b.Release()
	for i, name := range flightNames {
		b.Field(0).(*array.Int64Builder).Append(int64(i + 1))
		b.Field(1).(*array.StringBuilder).Append(name)
		b.Field(2).(*array.StringBuilder).Append(f.s.dbid)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()

	w := flight.NewRecordWriter(stream, ipc.WithSchema(flightSchema), ipc.WithAllocator(f.s.mem))
	if err := w.Write(rec); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func newArrow(dbid string) arrowServer { return NewFlight(dbid) }
