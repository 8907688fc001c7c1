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
// cmd/ingress wires packages together. The README's package map says the
// same in prose.
var allowed = map[string][]string{
	// The binary: flags, signals, wiring.
	"cmd/ingress": {"ingress", "routing", "tlsconfig", "dnsstub", "internal/config", "internal/demo",
		"internal/handover", "internal/fleet", "internal/logging", "internal/tasks",
		"internal/cli", "internal/buildinfo", "internal/sdnotify"},
	// Product packages.
	"ingress":         {"routing", "tlsconfig", "internal/refusal"},
	"routing":         {"internal/yamlutil", "internal/fswatch"},
	"tlsconfig":       {"internal/fswatch", "internal/opensslsign"},
	"dnsstub":         {"routing"},
	"internal/config": {"ingress", "routing", "tlsconfig", "dnsstub", "internal/fleet", "internal/logging", "internal/yamlutil"},
	"internal/fleet":  {"routing", "tlsconfig"},
	"internal/demo":   {"internal/bolt"},
	// Features and libraries under internal/, each owning one thing.
	"internal/refusal":     {"internal/bolt"},
	"internal/handover":    {},
	"internal/opensslsign": {},
	"internal/logging":     {},
	"internal/tasks":       {},
	"internal/bolt":        {},
	"internal/yamlutil":    {},
	"internal/fswatch":     {},
	"internal/cli":         {},
	"internal/sdnotify":    {},
	// The flavour is the signer's: built with OpenSSL or not.
	"internal/buildinfo": {"internal/opensslsign"},
	// Test helpers, under one roof.
	"internal/testenv":            {},
	"internal/testenv/loopback":   {},
	"internal/testenv/yamlbomb":   {},
	"internal/testenv/etcdtest":   {"internal/testenv"},
	"internal/testenv/pebbletest": {"tlsconfig", "internal/testenv"},
	"internal/testenv/knottest":   {"internal/testenv"},
	"internal/archtest":           {},
	// Benchmarks and the comparison harness.
	"bench":         {"ingress", "routing", "tlsconfig", "dnsstub", "internal/demo"},
	"bench/loadgen": {},
}

// testAllowed lists what a package's tests may import beyond the package
// itself, what the package may import, and the helpers every test may use
// (internal/testenv, internal/testenv/loopback). Each entry has its
// reason: a test that reaches further drags the wider module (etcd,
// certmagic) into a package that must not know of it.
var testAllowed = map[string][]string{
	// The binary's tests drive everything, with real etcd, Pebble and Knot
	// (the DNS authority of ACME's rfc2136 provider), and read what the
	// fleet stored.
	"cmd/ingress": {"internal/testenv/etcdtest", "internal/testenv/pebbletest", "internal/testenv/knottest", "internal/fleet"},
	// The fleet's parts are tested against a real etcd and real ACME
	// issuance into etcd storage, with the stub publishing challenges.
	"internal/fleet": {"internal/testenv/etcdtest", "internal/testenv/pebbletest", "dnsstub"},
	// ACME against Pebble; the DNS-01 answers come from a test server.
	// The RFC 2136 publisher updates a real authority, Knot.
	"tlsconfig": {"internal/testenv/pebbletest", "internal/testenv/knottest"},
	// The refusal tests speak Bolt as a driver would.
	"ingress": {"internal/bolt"},
}

// everyTest may be imported by any package's tests.
var everyTest = []string{"internal/testenv", "internal/testenv/loopback", "internal/testenv/yamlbomb"}

// forbidden lists outside packages a package must not depend on, even
// through others, with the reason.
var forbidden = map[string]map[string]string{
	"routing": {
		"crypto/tls":      "routing knows nothing of TLS",
		"go.uber.org/zap": "routing reports through callbacks, not logs",
		"net/http":        "routing knows nothing of protocols",
		"github.com/prometheus/client_golang/prometheus": "metrics belong to ingress",
		"go.etcd.io/etcd/client/v3":                      "the etcd client belongs to internal/fleet",
	},
	"tlsconfig": {
		module + "/routing":         "tlsconfig knows nothing of routes",
		"go.etcd.io/etcd/client/v3": "the etcd client belongs to internal/fleet; tlsconfig sees certmagic.Storage",
	},
	"ingress": {"go.etcd.io/etcd/client/v3": "the data path knows nothing of where routes are stored"},
	// go list runs without build tags: this is the production binary.
	"cmd/ingress": {"github.com/apache/arrow-go/v18/arrow/flight": "the demo's Flight fake is built only with -tags demoflight"},
}

func TestImportGraph(t *testing.T) {
	for _, p := range listPackages(t) {
		name, _ := rel(p.ImportPath)
		if _, listed := allowed[name]; !listed {
			t.Errorf("%s is not in the layout: add it to allowed, with what it may import, and to the README's package map", name)
		}
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
