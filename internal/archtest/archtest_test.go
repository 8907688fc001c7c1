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
	ImportPath   string
	Doc          string
	Imports      []string
	Deps         []string
	TestImports  []string
	XTestImports []string
	GoFiles      []string
}

// rel is the package's path inside the module ("" for none).
func rel(path string) (string, bool) {
	if !strings.HasPrefix(path, module+"/") {
		return "", false
	}
	return strings.TrimPrefix(path, module+"/"), true
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
	"cmd/ingress":         {"ingress", "routing", "tlsconfig", "dnsstub", "internal/config", "internal/demo", "internal/handover", "internal/etcdkv", "internal/logging", "internal/tasks"},
	"internal/config":     {"ingress", "routing", "tlsconfig", "dnsstub", "internal/yamlutil", "internal/logging", "internal/etcdkv"},
	"ingress":             {"routing", "tlsconfig", "internal/refusal"},
	"internal/refusal":    {"internal/bolt"},
	"internal/logging":    {},
	"internal/tasks":      {},
	"routing":             {"internal/yamlutil", "internal/fswatch"},
	"tlsconfig":           {"internal/fswatch", "internal/opensslsign"},
	"dnsstub":             {"routing"},
	"internal/demo":       {"internal/bolt"},
	"internal/pebbletest": {"tlsconfig", "internal/testenv"},
	"internal/etcdtest":   {"internal/testenv"},
	"internal/loopback":   {},
	"internal/testenv":    {},
	"internal/etcdkv":     {"routing", "tlsconfig"},
	"bench":               {"ingress", "routing", "tlsconfig", "dnsstub", "internal/demo"},
}

// testAllowed lists what a package's tests may import beyond the package
// itself, what the package may import, and the helpers every test may use
// (internal/testenv, internal/loopback). Each entry has its reason: a
// test that reaches further drags the wider module (etcd, certmagic) into
// a package that must not know of it.
var testAllowed = map[string][]string{
	// The binary's tests drive everything, with real etcd and Pebble.
	"cmd/ingress": {"internal/etcdtest", "internal/pebbletest"},
	// The fleet's parts are tested against a real etcd and real ACME
	// issuance into etcd storage, with the stub publishing challenges.
	"internal/etcdkv": {"internal/etcdtest", "internal/pebbletest", "dnsstub"},
	// ACME against Pebble; the DNS-01 answers come from a test server.
	"tlsconfig": {"internal/pebbletest"},
	// The refusal tests speak Bolt as a driver would.
	"ingress": {"internal/bolt"},
	// Load benchmarks drive the whole data path.
	"bench": {"internal/demo"},
}

// everyTest may be imported by any package's tests.
var everyTest = []string{"internal/testenv", "internal/loopback"}

// forbidden lists outside packages a package must not depend on, even
// through others, with the reason.
var forbidden = map[string]map[string]string{
	"routing": {
		"crypto/tls":      "routing knows nothing of TLS",
		"go.uber.org/zap": "routing reports through callbacks, not logs",
		"net/http":        "routing knows nothing of protocols",
		"github.com/prometheus/client_golang/prometheus": "metrics belong to ingress",
		"go.etcd.io/etcd/client/v3":                      "the etcd client belongs to the fleet package",
	},
	"tlsconfig": {module + "/routing": "tlsconfig knows nothing of routes"},
}

func TestImportGraph(t *testing.T) {
	for _, p := range listPackages(t) {
		name, _ := rel(p.ImportPath)
		for _, dep := range p.Deps {
			if reason, bad := forbidden[name][dep]; bad {
				t.Errorf("%s depends on %s: %s", name, dep, reason)
			}
		}
		for _, imp := range p.Imports {
			if dep, ok := rel(imp); ok && !slices.Contains(allowed[name], dep) {
				t.Errorf("%s imports %s, which DESIGN.md's layout does not allow", name, dep)
			}
		}
	}
}

// TestTestImports holds tests to the same layout, with the exceptions in
// testAllowed: a package's tests are built with it, and whatever they pull
// in is what a newcomer must have to test it.
func TestTestImports(t *testing.T) {
	for _, p := range listPackages(t) {
		name, _ := rel(p.ImportPath)
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			dep, ok := rel(imp)
			if !ok || dep == name || slices.Contains(allowed[name], dep) ||
				slices.Contains(everyTest, dep) || slices.Contains(testAllowed[name], dep) {
				continue
			}
			t.Errorf("%s's tests import %s: allow it in testAllowed with the reason, or test it where it belongs", name, dep)
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
