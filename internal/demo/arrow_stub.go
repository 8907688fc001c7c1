//go:build !demoflight

package demo

import (
	"net"
	"net/http"
)

// arrowStub answers every gRPC call with UNIMPLEMENTED, in a trailers-only
// response, over cleartext HTTP/2: the production binary must not link
// arrow-go and gRPC for a demo, and a Flight client still hears why.
type arrowStub struct{ srv *http.Server }

// arrowStubMessage is what a Flight client is told.
const arrowStubMessage = "this build has no Arrow Flight demo instance: build with -tags demoflight (make run does)"

func newArrow(string) arrowServer {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "12") // UNIMPLEMENTED
		w.Header().Set("Grpc-Message", arrowStubMessage)
		w.WriteHeader(http.StatusOK)
	}), Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true)
	return &arrowStub{srv: srv}
}

func (a *arrowStub) Serve(ln net.Listener) error { return a.srv.Serve(ln) }
func (a *arrowStub) Stop()                       { a.srv.Close() }
