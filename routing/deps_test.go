package routing

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps routing free of TLS, logging and metrics: DESIGN.md says
// routing knows nothing of TLS or sockets, and its watcher reports through
// a callback.
func TestDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	forbidden := map[string]string{
		"crypto/tls":      "routing knows nothing of TLS",
		"net/http":        "routing serves nothing",
		"go.uber.org/zap": "the watcher reports through OnReload, not a logger",
		"github.com/prometheus/client_golang/prometheus": "metrics belong to the caller",
		"github.com/neo4j/private-ingress/ingress":       "ingress depends on routing, not the reverse",
		"github.com/neo4j/private-ingress/tlsconfig":     "tlsconfig knows nothing of routes",
	}
	for _, dep := range strings.Fields(string(out)) {
		if why, bad := forbidden[dep]; bad {
			t.Errorf("routing depends on %s: %s", dep, why)
		}
	}
}
