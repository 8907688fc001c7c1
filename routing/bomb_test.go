package routing

import (
	"errors"
	"fmt"
	"github.com/neo4j/private-ingress/internal/testenv/yamlbomb"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/yamlutil"
)

// Alias bombs ("billion laughs"), 8-25 KB each, for every YAML input of
// this package: routes.yaml (Parse, LoadFile) and one instance (ParseEntry:
// an etcd value, a file of `ingress routes put`). Each is refused with the
// file and the line of the alias that blows up, before anything walks it
// whole; the time it took is logged, not asserted.

var bombNS = Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}}

type bomb struct {
	name string
	doc  string
	line int // of the first alias of the document whose expansion is too much
}

// chain is a block mapping of the same, one anchor a line at indent.
func chain(indent string, width, depth int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%sa0: &a0 [%s]\n", indent, yamlbomb.List("h:1", width))
	for d := 1; d <= depth; d++ {
		fmt.Fprintf(&b, "%sa%d: &a%d [%s]\n", indent, d, d, yamlbomb.List(fmt.Sprintf("*a%d", d-1), width))
	}
	return b.String()
}

// fanOut is a backends mapping of k services sharing one list of k
// addresses: k² nodes that the key check and yaml.v3 both walk.
func fanOut(k int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{bolt: &s [%s]", yamlbomb.List("h:1", k))
	for j := range k {
		fmt.Fprintf(&b, ", s%d: *s", j)
	}
	b.WriteString("}")
	return b.String()
}

func routesBombs() []bomb {
	return []bomb{
		{"laughs in endpoints", "instances:\n- dbid: abcd1234\n  orch: \"0000\"\n  endpoints: " + yamlbomb.Laughs(100, 20, "vpce-1") + "\n  backends: {bolt: [\"127.0.0.1:7687\"]}\n", 4},
		{"a chain of backends", "instances:\n- dbid: abcd1234\n  orch: \"0000\"\n  backends:\n" + chain("    ", 80, 40), 7},
		// Cubic: instances × services × addresses, all of which the key
		// check visits (4.5 s on the old code at 6 KB).
		{"instances of a fan-out", "instances:\n- &i {dbid: abcd1234, orch: \"0000\", backends: " + fanOut(430) + "}\n" + strings.Repeat("- *i\n", 430), 2},
		{"merge keys", "instances:\n- &i {dbid: abcd1234, orch: \"0000\", backends: {bolt: [" + yamlbomb.List("h:1", 1000) + "]}}\n- {<<: [" + yamlbomb.List("*i", 1000) + "], dbid: ef567890}\n", 3},
	}
}

func entryBombs() []bomb {
	return []bomb{
		{"laughs in endpoints", "dbid: abcd1234\norch: \"0000\"\nendpoints: " + yamlbomb.Laughs(100, 20, "vpce-1") + "\nbackends: {bolt: [\"127.0.0.1:7687\"]}\n", 3},
		{"a chain of backends", "dbid: abcd1234\norch: \"0000\"\nbackends:\n" + chain("  ", 80, 40), 6},
		{"a fan-out of backends", "dbid: abcd1234\norch: \"0000\"\nbackends: " + fanOut(1200) + "\n", 3},
	}
}

func checkBomb(t *testing.T, file string, b bomb, err error, took time.Duration) {
	t.Helper()
	t.Logf("%d bytes refused in %v", len(b.doc), took)
	if len(b.doc) < 8<<10 || len(b.doc) > 25<<10 {
		t.Errorf("the bomb is %d bytes, want 8-25 KB", len(b.doc))
	}
	var es yamlutil.Errors
	if !errors.As(err, &es) || len(es) != 1 {
		t.Fatalf("error %v, want one positioned error", err)
	}
	want := fmt.Sprintf("%s:%d: document expands to more than ", file, b.line)
	if msg := err.Error(); !strings.HasPrefix(msg, want) || !strings.HasSuffix(msg, " nodes through aliases (anchors/aliases used as a bomb?)") {
		t.Errorf("error %q, want %q...", msg, want)
	}
}

func TestParseRefusesAliasBombs(t *testing.T) {
	dir := t.TempDir()
	for _, b := range routesBombs() {
		t.Run(b.name, func(t *testing.T) {
			if _, ok := parseFast([]byte(b.doc)); ok {
				t.Error("the fast path took a document with aliases")
			}
			start := time.Now()
			tb, err := Parse("routes.yaml", []byte(b.doc), bombNS, nil)
			checkBomb(t, "routes.yaml", b, err, time.Since(start))
			if tb != nil {
				t.Error("a table and an error")
			}
			path := filepath.Join(dir, "routes.yaml")
			if err := os.WriteFile(path, []byte(b.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			start = time.Now()
			_, err = LoadFile(path, bombNS, nil)
			checkBomb(t, path, b, err, time.Since(start))
		})
	}
}

func TestParseEntryRefusesAliasBombs(t *testing.T) {
	for _, b := range entryBombs() {
		t.Run(b.name, func(t *testing.T) {
			start := time.Now()
			_, err := ParseEntry("etcd:/ingress/routes/0000/abcd1234", []byte(b.doc), bombNS)
			checkBomb(t, "etcd:/ingress/routes/0000/abcd1234", b, err, time.Since(start))
		})
	}
}

// TestReadEntriesRefusesAliasBombs: `ingress routes put` refuses a bomb
// among good files, and so writes nothing.
func TestReadEntriesRefusesAliasBombs(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("dbid: ef567890\norch: \"0000\"\nbackends: {bolt: [\"127.0.0.1:7687\"]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, b := range entryBombs() {
		t.Run(b.name, func(t *testing.T) {
			path := filepath.Join(dir, "bomb.yaml")
			if err := os.WriteFile(path, []byte(b.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			entries, err := ReadEntries([]string{good, path}, bombNS)
			if entries != nil {
				t.Errorf("entries %+v with a bomb among the files", entries)
			}
			checkBomb(t, path, b, err, time.Since(start))
		})
	}
}

// TestParseKeepsModestAliases: an anchor reused a few times (shared
// endpoints and backends, a whole instance) parses as written out.
func TestParseKeepsModestAliases(t *testing.T) {
	doc := `instances:
- dbid: abcd1234
  orch: "0000"
  public: true
  endpoints: &eps [vpce-1, vpce-2]
  backends: &b {bolt: ["10.0.0.1:7687", "10.0.0.2:7687"], http: ["10.0.0.1:7474"]}
- {dbid: ef567890, orch: "0000", endpoints: *eps, backends: *b}
- {dbid: 12345678, orch: "0000", backends: *b}
- {dbid: 87654321, orch: "0000", backends: *b}
`
	tb, err := Parse("routes.yaml", []byte(doc), bombNS, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Len() != 4 {
		t.Fatalf("%d instances", tb.Len())
	}
	for _, dbid := range []string{"abcd1234", "ef567890", "12345678", "87654321"} {
		inst, res := tb.Lookup(dbid + ".production-orch-0000.neo4j.io")
		if res != Found || inst.Pool(Bolt).Len() != 2 || inst.Pool(HTTP).Len() != 1 {
			t.Errorf("%s: %v %+v", dbid, res, inst)
		}
	}
	e, err := ParseEntry("etcd:x", []byte("dbid: abcd1234\norch: \"0000\"\nbackends: {bolt: &a [\"10.0.0.1:7687\"], http: *a}\n"), bombNS)
	if err != nil || e.spec.Backends[HTTP][0] != "10.0.0.1:7687" {
		t.Errorf("ParseEntry with an alias: %+v, %v", e, err)
	}
}
