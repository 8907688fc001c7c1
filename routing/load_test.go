package routing

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/yamlutil"
)

// wantErr is one expected problem: the line it is reported at and a part of
// its message.
type wantErr struct {
	line int
	msg  string
}

// parseErrorCase is one malformed routes document and the problems Parse
// must report for it.
type parseErrorCase struct {
	name string
	doc  string
	want []wantErr // in the order reported
	// upTo accepts any line from 1 to the wanted one: yaml.v3 reports
	// some syntax errors at the start of the enclosing collection
	// rather than at the offending line.
	upTo bool
}

var parseErrorTests = []parseErrorCase{
	{
		name: "unknown key at top level",
		doc:  "foo: 1\ninstances: []\n",
		want: []wantErr{{1, `unknown key "foo"`}},
	},
	{
		name: "unknown key inside an instance",
		doc: `instances:
  - dbid: a
    orch: "0000"
    foo: 1
`,
		want: []wantErr{{4, `unknown key "foo"`}},
	},
	{
		name: "unknown keys at two levels",
		doc: `instances:
  - dbid: a
    orch: "0000"
    foo: 1
bar: 2
`,
		want: []wantErr{{4, `unknown key "foo"`}, {5, `unknown key "bar"`}},
	},
	{
		name: "duplicate dbid",
		doc: `instances:
  - dbid: a
    orch: "0000"
  - dbid: b
    orch: "0000"
  - dbid: a
    orch: "0000"
`,
		want: []wantErr{{6, "duplicate instance a in orch 0000 (first defined at line 2)"}},
	},
	{
		name: "duplicate dbid differing in case",
		doc: `instances:
  - {dbid: abc, orch: "0000"}
  - {dbid: ABC, orch: "0000"}
`,
		want: []wantErr{{3, "duplicate instance abc in orch 0000 (first defined at line 2)"}},
	},
	{
		name: "backend without port",
		doc: `instances:
  - dbid: a
    orch: "0000"
    backends:
      bolt:
        - 10.0.0.1
`,
		want: []wantErr{{6, `backend "10.0.0.1": no port`}},
	},
	{
		name: "backend listed twice",
		doc: `instances:
  - dbid: a
    orch: "0000"
    backends:
      bolt: ["10.0.0.1:7687", "10.0.0.2:7687", "10.0.0.1:7687"]
`,
		want: []wantErr{{5, `backend "10.0.0.1:7687" is listed twice for bolt`}},
	},
	{
		name: "bad ports",
		doc: `instances:
  - dbid: a
    orch: "0000"
    backends:
      bolt:
        - "10.0.0.1:0"
        - "10.0.0.1:70000"
        - "10.0.0.1:http"
        - "10.0.0.1:7687"
`,
		want: []wantErr{
			{6, `backend "10.0.0.1:0": port "0"`},
			{7, `backend "10.0.0.1:70000": port "70000"`},
			{8, `backend "10.0.0.1:http": port "http"`},
		},
	},
	{
		name: "backend without host",
		doc: `instances:
  - dbid: a
    orch: "0000"
    backends:
      bolt: [":7687"]
`,
		want: []wantErr{{5, `backend ":7687": no host`}},
	},
	{
		name: "unknown service in backends",
		doc: `instances:
  - dbid: a
    orch: "0000"
    backends:
      bolt: ["10.0.0.1:7687"]
      smtp: ["10.0.0.1:25"]
`,
		want: []wantErr{{6, `unknown service "smtp" in backends`}},
	},
	{
		name: "orch not served",
		doc: `instances:
  - dbid: a
    orch: "0001"
`,
		want: []wantErr{{3, `orch "0001" is not served`}},
	},
	{
		name: "orch that cannot form a label",
		doc: `instances:
  - dbid: a
    orch: "00_0"
`,
		want: []wantErr{{3, `orch "00_0" cannot form the label`}},
	},
	{
		name: "missing dbid and orch",
		doc: `instances:
  - orch: "0000"
  - dbid: b
`,
		want: []wantErr{{2, "instance has no dbid"}, {3, `instance "b" has no orch`}},
	},
	{
		name: "bad dbid labels",
		doc: `instances:
  - dbid: a_b
    orch: "0000"
  - dbid: -ab
    orch: "0000"
  - dbid: bücher
    orch: "0000"
  - dbid: ` + strings.Repeat("a", 64) + `
    orch: "0000"
  - dbid: a.b
    orch: "0000"
`,
		want: []wantErr{
			{2, `dbid "a_b" is not a DNS label`},
			{4, `dbid "-ab" is not a DNS label`},
			{6, `dbid "bücher" is not a DNS label`},
			{8, fmt.Sprintf("dbid %q is not a DNS label", strings.Repeat("a", 64))},
			{10, `dbid "a.b" is not a DNS label`},
		},
	},
	{
		name: "bad endpoint ids",
		doc: `instances:
  - dbid: a
    orch: "0000"
    endpoints:
      - vpce-0a1b
      - vpce-ABC
      - aws:123
      - azure:abc
      - "psc:"
      - azure:1234
`,
		want: []wantErr{
			{6, `endpoint "vpce-ABC"`},
			{7, `endpoint "aws:123"`},
			{8, `endpoint "azure:abc"`},
			{9, `endpoint "psc:"`},
		},
	},
	{
		name: "empty backend lists",
		doc: `instances:
  - dbid: a
    orch: "0000"
    backends:
      bolt: []
      http:
`,
		want: []wantErr{{5, "service bolt has an empty backend list"}, {6, "service http has an empty backend list"}},
	},
	{
		name: "YAML syntax error",
		doc: `instances:
  - dbid: a
    orch: "0000
`,
		want: []wantErr{{3, ""}},
	},
	{
		name: "YAML syntax error: bad indentation",
		doc: `instances:
  - dbid: a
    orch: "0000"
   public: true
`,
		want: []wantErr{{4, ""}},
		upTo: true,
	},
	{
		name: "backends given as a string",
		doc: `instances:
  - dbid: a
    orch: "0000"
    backends: "10.0.0.1:7687"
`,
		want: []wantErr{{4, ""}},
	},
	{
		name: "public is not a boolean",
		doc: `instances:
  - dbid: a
    orch: "0000"
    public: maybe
`,
		want: []wantErr{{4, ""}},
	},
	{
		name: "instances given as a string",
		doc:  "instances: foo\n",
		want: []wantErr{{1, ""}},
	},
	{
		name: "document is a list",
		doc:  "- dbid: a\n",
		want: []wantErr{{1, ""}},
	},
	{
		name: "service defined twice",
		doc: `instances:
  - dbid: a
    orch: "0000"
    backends:
      bolt: ["10.0.0.1:7687"]
      bolt: ["10.0.0.2:7687"]
`,
		want: []wantErr{{6, ""}},
	},
	{
		name: "several errors in line order",
		doc: `instances:
  - dbid: a_b
    orch: "0001"
    endpoints: [vpce-BAD]
    backends:
      https: ["10.0.0.1"]
      bolt: ["10.0.0.1:0"]
      smtp: ["10.0.0.1:25"]
      http: []
  - dbid: ok
    orch: "0000"
  - dbid: OK
    orch: "0000"
`,
		want: []wantErr{
			{2, `dbid "a_b" is not a DNS label`},
			{3, `orch "0001" is not served`},
			{4, `endpoint "vpce-BAD"`},
			{6, `backend "10.0.0.1": no port`},
			{7, `backend "10.0.0.1:0": port "0"`},
			{8, `unknown service "smtp"`},
			{9, "service http has an empty backend list"},
			{12, "duplicate instance ok in orch 0000 (first defined at line 10)"},
		},
	},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range parseErrorTests {
		t.Run(tc.name, func(t *testing.T) {
			checkParseErrors(t, tc)
		})
	}
}

// checkParseErrors parses tc.doc and checks that it fails with exactly the
// problems in tc.want, each at its line and in order.
func checkParseErrors(t *testing.T, tc parseErrorCase) {
	tb, err := Parse("routes.yaml", []byte(tc.doc), testNS, nil)
	if err == nil {
		t.Fatalf("Parse succeeded (%d instances); want errors", tb.Len())
	}
	if tb != nil {
		t.Errorf("Parse returned a table with its error")
	}
	var es yamlutil.Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %T is not yamlutil.Errors: %v", err, err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(es) != len(tc.want) || len(lines) != len(tc.want) {
		t.Fatalf("got %d errors:\n%v\nwant %d", len(es), err, len(tc.want))
	}
	for i, w := range tc.want {
		if tc.upTo && es[i].Line >= 1 && es[i].Line <= w.line {
			w.line = es[i].Line
		}
		prefix := fmt.Sprintf("routes.yaml:%d: ", w.line)
		if !strings.HasPrefix(lines[i], prefix) || !strings.Contains(lines[i], w.msg) {
			t.Errorf("error %d = %q; want prefix %q containing %q", i, lines[i], prefix, w.msg)
		}
		if es[i].File != "routes.yaml" || es[i].Line != w.line {
			t.Errorf("error %d at %s:%d; want routes.yaml:%d", i, es[i].File, es[i].Line, w.line)
		}
		if len(lines[i]) <= len(prefix) {
			t.Errorf("error %d = %q has no message", i, lines[i])
		}
	}
}

// TestParseEmpty: only `instances: []` is an empty table. A file that is
// empty, holds only whitespace or comments, or lacks a value for
// instances is what a writer that truncates first leaves for a moment:
// refused, so that the last good table stays.
func TestParseEmpty(t *testing.T) {
	for doc, want := range map[string]string{
		"":                  "routes.yaml: no routes: the file is empty or holds only comments",
		"\n":                "routes.yaml: no routes: the file is empty or holds only comments",
		"  \n   \n":         "routes.yaml: no routes: the file is empty or holds only comments",
		"# no routes yet\n": "routes.yaml: no routes: the file is empty or holds only comments",
		"---\n":             "routes.yaml: no routes: the file is empty or holds only comments",
		"~\n":               "routes.yaml: no routes: the file is empty or holds only comments",
		"instances:\n":      "routes.yaml:1: instances has no value",
		"instances: ~\n":    "routes.yaml:1: instances has no value",
		"{}\n":              "routes.yaml:1: no instances key",
	} {
		t.Run(fmt.Sprintf("%q", doc), func(t *testing.T) {
			tb, err := Parse("routes.yaml", []byte(doc), testNS, nil)
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "instances: []") {
				t.Fatalf("Parse = %v, %v; want an error starting %q that says how to write an empty table", tb, err, want)
			}
		})
	}
	tb, err := Parse("routes.yaml", []byte("instances: []\n"), testNS, nil)
	if err != nil || tb == nil || tb.Len() != 0 {
		t.Fatalf("Parse(instances: []) = %v, %v; want an empty table", tb, err)
	}
	if _, res := tb.Lookup("abcd1234.production-orch-0000.neo4j.io"); res != UnknownDBID {
		t.Errorf("Lookup in empty table = %v; want UnknownDBID", res)
	}
	if ns := tb.Namespace(); ns.Domain != "neo4j.io" {
		t.Errorf("Namespace() = %+v; want the namespace given to Parse", ns)
	}
}

// Unquoted orch 0000 is a YAML integer; it must still read as the label "0000".
func TestParseUnquotedOrch(t *testing.T) {
	tb := mustParse(t, "instances:\n  - dbid: a\n    orch: 0000\n", nil)
	if !tb.Has("a", "0000") {
		t.Fatal(`unquoted orch 0000 was not read as "0000"`)
	}
}

func TestParseKeepsHealthAcrossReload(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	const host = "abcd1234.production-orch-0000.neo4j.io"
	t1 := mustParse(t, testRoutes, nil)
	i1, _ := t1.Lookup(host)
	failed := i1.Pool(Bolt).Order(now, nil)[0]
	if failed.Addr != "10.0.1.5:7687" {
		t.Fatalf("first bolt backend is %q", failed.Addr)
	}
	failed.Fail(now, time.Minute)

	// Same file reloaded with prev: the same Backend, still cooling down.
	t2 := mustParse(t, testRoutes, t1)
	i2, _ := t2.Lookup(host)
	if i2 == i1 {
		t.Fatal("reload returned the same Instance; want a new table")
	}
	var again *Backend
	for _, b := range i2.Pool(Bolt).Order(now, nil) {
		if b.Addr == failed.Addr {
			again = b
		}
	}
	if again != failed {
		t.Fatalf("after reload, backend %s is %p; want the same pointer %p", failed.Addr, again, failed)
	}
	if again.Available(now.Add(30 * time.Second)) {
		t.Error("backend became available across a reload while cooling down")
	}
	if !again.Available(now.Add(time.Minute)) {
		t.Error("backend not available after its cooldown")
	}

	// The same address under https (another port) is another backend: healthy.
	https := i2.Pool(HTTPS).Order(now, nil)[0]
	if !https.Available(now) {
		t.Error("10.0.1.5:7473 inherited the health of 10.0.1.5:7687")
	}

	// Without prev, health starts fresh.
	t3 := mustParse(t, testRoutes, nil)
	i3, _ := t3.Lookup(host)
	for _, b := range i3.Pool(Bolt).Order(now, nil) {
		if b == failed || !b.Available(now) {
			t.Errorf("reload without prev kept backend %s (%p)", b.Addr, b)
		}
	}

	// A moved address is a new, healthy backend; the old table is untouched.
	moved := strings.Replace(testRoutes, "10.0.1.5:7687", "10.0.1.9:7687", 1)
	t4 := mustParse(t, moved, t2)
	i4, _ := t4.Lookup(host)
	for _, b := range i4.Pool(Bolt).Order(now, nil) {
		if b.Addr == failed.Addr || !b.Available(now) {
			t.Errorf("after moving the address, backend %s (available %v)", b.Addr, b.Available(now))
		}
	}
	if got := addrs(i1.Pool(Bolt).Order(now, nil)); len(got) != 3 || !strings.Contains(strings.Join(got, " "), "10.0.1.5:7687") {
		t.Errorf("old table changed by a reload: %q", got)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(path, []byte(testRoutes), 0o644); err != nil {
		t.Fatal(err)
	}
	tb, err := LoadFile(path, testNS, nil)
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	if tb.Len() != 2 {
		t.Errorf("Len = %d; want 2", tb.Len())
	}

	if err := os.WriteFile(path, []byte("instances:\n  - dbid: a\n    orch: \"0001\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadFile(path, testNS, nil)
	if err == nil || !strings.HasPrefix(err.Error(), path+":3: ") {
		t.Errorf("LoadFile of a bad file: %v; want an error prefixed %s:3: ", err, path)
	}

	_, err = LoadFile(filepath.Join(dir, "missing.yaml"), testNS, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadFile of a missing file: %v; want fs.ErrNotExist", err)
	}
}
