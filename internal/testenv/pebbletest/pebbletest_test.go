package pebbletest

import (
	"net"
	"testing"
)

// TestStartRetriesOnATakenPort: a port taken between picking and binding
// costs a start on other ports, not the test.
func TestStartRetriesOnATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	picks := 0
	pickPort = func(t testing.TB) int {
		picks++
		if picks == 2 { // the management port
			return taken.Addr().(*net.TCPAddr).Port
		}
		return freePort(t)
	}
	defer func() { pickPort = freePort }()
	p := Start(t, "127.0.0.1:53") // no challenge is validated here
	if picks < 4 {
		t.Errorf("%d ports picked, want a second start on fresh ones", picks)
	}
	p.Roots(t)
}
