package ingress_test

import (
	"fmt"
	"runtime"
	"testing"
	"weak"

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/routing"
)

// TestOpenConnectionsDoNotKeepOldTables: a connection must not keep the
// routing table it was routed with alive once a reload replaced it. A
// table of 100,000 instances is tens of MB, Bolt connections last days,
// and a fleet on etcd reloads often.
func TestOpenConnectionsDoNotKeepOldTables(t *testing.T) {
	b := startBackend(t, "a")
	routes := fmt.Sprintf("instances:\n  - {dbid: abcd1234, orch: \"0000\", public: true, backends: {bolt: [%q]}}\n", b.addr())
	e := startEnv(t, routes)
	old := weak.Make(e.routes.Load())
	c, r, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	defer c.Close()

	next, err := routing.Parse("routes.yaml", []byte(routes), ns, e.routes.Load())
	if err != nil {
		t.Fatal(err)
	}
	e.routes.Store(next)
	// Collected at the next cycles, unless something holds it for good.
	if !testenv.Poll(testenv.WaitTimeout, func() bool { runtime.GC(); return old.Value() == nil }) {
		t.Error("an open connection keeps the replaced routing table alive")
	}
	fmt.Fprintf(c, "still here\n")
	if line, err := r.ReadString('\n'); err != nil || line != "still here\n" {
		t.Errorf("echo after the reload: %q, %v", line, err)
	}
}
