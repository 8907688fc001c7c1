package etcdtest

import (
	"context"
	"net"
	"testing"
)

// TestStartRetriesOnATakenPort: a port taken between picking and binding
// costs a start on other ports, not the test; the relay keeps Endpoint
// through a stop and a restart.
func TestStartRetriesOnATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	picks := 0
	pickAddr = func(t testing.TB) string {
		picks++
		if picks == 1 {
			return taken.Addr().String()
		}
		return freeAddr(t)
	}
	defer func() { pickAddr = freeAddr }()
	e := Start(t)
	if picks < 4 {
		t.Errorf("%d ports picked, want a second start on fresh ones", picks)
	}
	c := e.Client()
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	e.Stop()
	e.client = taken.Addr().String() // the restart finds its port taken too
	e.Restart()
	resp, err := c.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after a restart on other ports: %v, %v", resp, err)
	}
}
