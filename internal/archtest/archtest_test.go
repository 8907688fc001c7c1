package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/neo4j/private-ingress"

type pkg struct {
	ImportPath string
	Doc        string
	Imports    []string
	GoFiles    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// allowed lists, for each package, the project packages it may import; a
// package not listed may import none. The reasons are DESIGN.md's: routing
// knows nothing of TLS or sockets, tlsconfig nothing of routes, and only
// cmd/ingress wires packages together.
var allowed = map[string][]string{
	"cmd/ingress":         {"ingress", "routing", "tlsconfig", "dnsstub", "internal/config", "internal/demo", "internal/handover", "internal/etcdkv"},
	"internal/config":     {"ingress", "routing", "tlsconfig", "dnsstub", "internal/yamlutil"},
	"ingress":             {"routing", "tlsconfig", "internal/bolt"},
	"routing":             {"internal/yamlutil", "internal/fswatch"},
	"tlsconfig":           {"internal/fswatch", "internal/opensslsign"},
	"dnsstub":             {"routing"},
	"internal/demo":       {"internal/bolt"},
	"internal/pebbletest": {"tlsconfig"},
	"internal/etcdtest":   {},
	"internal/loopback":   {},
	"internal/etcdkv":     {"routing", "tlsconfig"},
	"bench":               {"ingress", "routing", "tlsconfig", "dnsstub", "internal/demo"},
}

// forbidden lists outside imports a package must not use, with the reason.
var forbidden = map[string]map[string]string{
	"routing": {
		"crypto/tls":      "routing knows nothing of TLS",
		"go.uber.org/zap": "routing reports through callbacks, not logs",
		"net/http":        "routing knows nothing of protocols",
		"github.com/prometheus/client_golang/prometheus": "metrics belong to ingress",
	},
	"tlsconfig": {"github.com/neo4j/private-ingress/routing": "tlsconfig knows nothing of routes"},
}

func TestImportGraph(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, imp := range p.Imports {
			if reason, bad := forbidden[rel][imp]; bad {
				t.Errorf("%s imports %s: %s", rel, imp, reason)
			}
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if !slices.Contains(allowed[rel], dep) {
				t.Errorf("%s imports %s, which DESIGN.md's layout does not allow", rel, dep)
			}
		}
	}
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range listPackages(t) {
		if len(p.GoFiles) > 0 && strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}
