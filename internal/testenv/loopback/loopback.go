// Package loopback holds the tests' little servers on 127.0.0.1: an accept
// loop that hands each connection to a function, and an echo server built
// on it; and an address that refuses connections. Tests only; what they
// hold is released when the test ends.
package loopback

import (
	"io"
	"net"
	"syscall"
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

// Refused returns an address on 127.0.0.1 that refuses connections until
// the test ends: a port bound but never listened on. Bound without
// SO_REUSEADDR, it cannot be taken by a listener (or an outgoing
// connection) meanwhile, as an address picked by listening and closing
// could be.
func Refused(t testing.TB) string {
	t.Helper()
	syscall.ForkLock.RLock() // no exec inherits it before it is close-on-exec
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	return (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
}
