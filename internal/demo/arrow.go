package demo

import "net"

// arrowServer is a fake instance's Arrow Flight endpoint: the real fake
// (flight.go, build tag demoflight) or, in the production binary, a stub
// that tells the client how to get it (arrow_stub.go).
type arrowServer interface {
	Serve(ln net.Listener) error
	Stop()
}
