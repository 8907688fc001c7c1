package yamlutil

import (
	"errors"
	"fmt"
	"github.com/neo4j/private-ingress/internal/testenv/yamlbomb"
	"regexp"
	"strings"
	"testing"
	"time"
)

type item struct {
	Name string              `yaml:"name"`
	Tags []string            `yaml:"tags"`
	Sub  map[string][]string `yaml:"sub"`
}

type doc struct {
	Items []item   `yaml:"items"`
	Notes []string `yaml:"notes"`
}

// schemaBomb fans out through the type itself, which is what the key
// check and Decode both walk: items × sub keys × list entries.
func schemaBomb(k int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "items:\n- &i {name: a, sub: {s: &s [%s]", strings.TrimSuffix(strings.Repeat("x, ", k), ", "))
	for j := range k {
		fmt.Fprintf(&b, ", s%d: *s", j)
	}
	b.WriteString("}}\n")
	b.WriteString(strings.Repeat("- *i\n", k))
	return b.String()
}

var bombRE = regexp.MustCompile(`^test\.yaml:(\d+): document expands to more than (\d+) nodes through aliases \(anchors/aliases used as a bomb\?\)$`)

// TestDecodeRefusesAliasBombs: a document that aliases expand beyond the
// bound is refused before anything walks it, with the file and the line
// of the alias that blew up. Old code walked them whole in checkKeys.
func TestDecodeRefusesAliasBombs(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		line      int
	}{
		{"laughs in a list of strings", "notes: " + yamlbomb.Laughs(100, 20, "x") + "\n", 1},
		{"laughs as items", "items: " + yamlbomb.Laughs(60, 30, "{name: a}") + "\n", 1},
		{"laughs in block style", "notes:\n- x\nitems:\n- name: a\n  sub:\n    a0: &a0 [" + strings.Repeat("x, ", 99) + "x]\n" + blockChain(40, 80), 8},
		{"through the schema", schemaBomb(500), 2},
		{"a cycle", "items: &c [*c]\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v doc
			start := time.Now()
			_, err := Decode("test.yaml", []byte(tc.doc), &v)
			t.Logf("%d bytes refused in %v", len(tc.doc), time.Since(start))
			var es Errors
			if !errors.As(err, &es) || len(es) != 1 {
				t.Fatalf("Decode = %v, want one positioned error", err)
			}
			m := bombRE.FindStringSubmatch(err.Error())
			if m == nil {
				t.Fatalf("error %q is not the alias bomb refusal", err)
			}
			if m[1] != fmt.Sprint(tc.line) {
				t.Errorf("error at line %s, want %d: %s", m[1], tc.line, err)
			}
		})
	}
}

// blockChain continues a block mapping (indented four spaces) with depth
// keys aN: &aN [*a(N-1) × width].
func blockChain(depth, width int) string {
	var b strings.Builder
	for d := 1; d <= depth; d++ {
		fmt.Fprintf(&b, "    a%d: &a%d [%s]\n", d, d, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", d-1), width), ", "))
	}
	return b.String()
}

// TestDecodeKeepsModestAliases: an anchor reused a few times, or in every
// entry of a long list, is what aliases are for.
func TestDecodeKeepsModestAliases(t *testing.T) {
	small := `items:
- name: a
  tags: &tags [red, green, blue]
  sub: &sub {bolt: ["10.0.0.1:7687", "10.0.0.2:7687"], http: ["10.0.0.1:7474"]}
- {name: b, tags: *tags, sub: *sub}
- {name: c, tags: *tags, sub: *sub}
notes: *tags
`
	var v doc
	if _, err := Decode("test.yaml", []byte(small), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Items) != 3 || strings.Join(v.Items[2].Tags, ",") != "red,green,blue" || len(v.Items[1].Sub["bolt"]) != 2 || len(v.Notes) != 3 {
		t.Fatalf("decoded %+v", v)
	}

	// 5,000 entries sharing one anchored mapping expand to a few times
	// the document.
	var b strings.Builder
	b.WriteString("items:\n- name: a0\n  sub: &sub {bolt: [\"10.0.0.1:7687\", \"10.0.0.2:7687\", \"10.0.0.3:7687\"], http: [\"10.0.0.1:7474\"]}\n")
	for i := 1; i < 5000; i++ {
		fmt.Fprintf(&b, "- {name: a%d, sub: *sub}\n", i)
	}
	v = doc{}
	if _, err := Decode("test.yaml", []byte(b.String()), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Items) != 5000 || len(v.Items[4999].Sub["bolt"]) != 3 {
		t.Fatalf("decoded %d items", len(v.Items))
	}
}

// TestExpansionBoundIgnoresPlainDocuments: without aliases a document
// expands to itself, so no size is refused.
func TestExpansionBoundIgnoresPlainDocuments(t *testing.T) {
	var b strings.Builder
	b.WriteString("notes:\n")
	for i := range 3 * minExpansion {
		fmt.Fprintf(&b, "- n%d\n", i)
	}
	var v doc
	if _, err := Decode("test.yaml", []byte(b.String()), &v); err != nil || len(v.Notes) != 3*minExpansion {
		t.Fatalf("Decode = %d notes, %v", len(v.Notes), err)
	}
}

// BenchmarkDecodeAliasBomb is the cost of refusing a 12 KB bomb.
func BenchmarkDecodeAliasBomb(b *testing.B) {
	data := []byte("notes: " + yamlbomb.Laughs(100, 20, "x") + "\n")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var v doc
		if _, err := Decode("test.yaml", data, &v); err == nil {
			b.Fatal("accepted")
		}
	}
}
