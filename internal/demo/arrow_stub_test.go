//go:build !demoflight

package demo

import (
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestArrowStubAnswersGRPC: without the Flight fake, a gRPC call to the
// demo's arrow service is answered UNIMPLEMENTED with the reason.
func TestArrowStubAnswersGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newArrow("abcd1234")
	go s.Serve(ln)
	defer s.Stop()
	client := &http.Client{Transport: &http.Transport{Protocols: new(http.Protocols)}}
	client.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)
	resp, err := client.Post("http://"+ln.Addr().String()+"/arrow.flight.protocol.FlightService/ListFlights", "application/grpc", strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.Header.Get("Grpc-Status") != "12" || !strings.Contains(resp.Header.Get("Grpc-Message"), "demoflight") {
		t.Errorf("HTTP/%d, grpc-status %q, message %q", resp.ProtoMajor, resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message"))
	}
}
