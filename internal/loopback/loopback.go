// Package loopback holds the tests' little servers on 127.0.0.1: an accept
// loop that hands each connection to a function, and an echo server built
// on it. Tests only; the listener closes when the test ends.
package loopback

import (
	"io"
	"net"
	"testing"
)

// Serve accepts on ln until it closes (at the end of the test), running
// handle for each connection in its own goroutine, and returns ln's address.
// handle owns the connection.
func Serve(t testing.TB, ln net.Listener, handle func(net.Conn)) string {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}

// Listen returns a TCP listener on 127.0.0.1:0.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// Echo serves an echo on 127.0.0.1:0 and returns its address.
func Echo(t testing.TB) string {
	t.Helper()
	return Serve(t, Listen(t), func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
	})
}

// EchoOn serves an echo on ln (a TLS listener, say) and returns its address.
func EchoOn(t testing.TB, ln net.Listener) string {
	t.Helper()
	return Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
	})
}
