package routing

import (
	"reflect"
	"strings"
	"testing"

	"github.com/neo4j/private-ingress/internal/yamlutil"
)

// fastShapes are documents in the shapes parseFast takes (accept) and
// shapes it leaves to yaml.v3 (not accept). Either way Parse must give
// what yaml.v3 gives.
var fastShapes = []struct {
	name   string
	doc    string
	accept bool
}{
	{"design example", testRoutes, true},
	{"flow instances", "instances:\n  - {dbid: db0001, orch: \"0000\", public: true, backends: {bolt: [\"127.0.0.1:1\"]}}\n  - {dbid: db0002, orch: '0000', public: false, endpoints: [vpce-0a1b], backends: {}}\n", true},
	{"compact sequences", "instances:\n- dbid: a\n  orch: 0000\n  endpoints:\n  - vpce-1\n  - psc:42\n  backends:\n    bolt:\n    - h:1\n    - h:2\n    https: [h:3]\n", true},
	{"deeper sequences", "instances:\n    -   dbid: a\n        orch: \"0000\"\n        endpoints:\n            - azure:7\n        backends:\n              bolt:\n                  - \"h:1\"\n", true},
	{"comments everywhere", "# routes\ninstances: # all\n  # the first\n  - dbid: a # id\n    orch: \"0000\"   # orch\n\n    backends: {bolt: [h:1]} # done\n# end\n", true},
	{"empty list", "instances: []\n", true},
	{"unquoted address in flow", "instances:\n  - {dbid: a, orch: \"0000\", backends: {bolt: [10.0.1.5:7687, \"[::1]:7687\"]}}\n", true},
	{"no trailing newline", "instances:\n  - dbid: a\n    orch: \"0000\"", true},
	{"paused", "instances:\n  - {dbid: a, orch: \"0000\", paused: true, backends: {bolt: [h:1]}}\n  - dbid: b\n    orch: \"0000\"\n    paused: false\n", true},
	{"paused twice", "instances:\n  - {dbid: a, orch: \"0000\", paused: true, paused: false}\n", false},
	{"paused yes", "instances:\n  - {dbid: a, orch: \"0000\", paused: yes}\n", false},

	{"anchor", "instances:\n  - &i {dbid: a, orch: \"0000\"}\n  - *i\n", false},
	{"tab", "instances:\n  - dbid: a\n    orch:\t\"0000\"\n", false},
	{"crlf", "instances:\r\n  - dbid: a\r\n    orch: \"0000\"\r\n", false},
	{"multi-line plain", "instances:\n  - dbid: a\n      b\n    orch: \"0000\"\n", false},
	{"escape", "instances:\n  - dbid: \"a\\u0062\"\n    orch: \"0000\"\n", false},
	{"quote escape", "instances:\n  - dbid: 'a''b'\n    orch: \"0000\"\n", false},
	{"repeated key", "instances:\n  - dbid: a\n    dbid: b\n    orch: \"0000\"\n", false},
	{"repeated service", "instances:\n  - dbid: a\n    orch: \"0000\"\n    backends: {bolt: [h:1], bolt: [h:2]}\n", false},
	{"unknown key", "instances:\n  - dbid: a\n    orch: \"0000\"\n    color: red\n", false},
	{"yes", "instances:\n  - dbid: a\n    orch: \"0000\"\n    public: yes\n", false},
	{"null", "instances:\n  - dbid: null\n    orch: \"0000\"\n", false},
	{"empty value", "instances:\n  - dbid:\n    orch: \"0000\"\n", false},
	{"null instances", "instances:\n", false},
	{"second document", "instances: []\n---\ninstances: []\n", false},
	{"other top-level key", "instances: []\nextra: 1\n", false},
	{"trailing comma", "instances:\n  - {dbid: a, orch: \"0000\", endpoints: [vpce-1,]}\n", false},
	{"spaces in plain", "instances:\n  - dbid: a b\n    orch: \"0000\"\n", false},
	{"tag", "instances:\n  - dbid: !!str a\n    orch: \"0000\"\n", false},
	{"non-ASCII", "instances:\n  - dbid: bücher\n    orch: \"0000\"\n", false},
	{"misaligned key", "instances:\n  - dbid: a\n     orch: \"0000\"\n", false},
	{"multi-line flow", "instances:\n  - {dbid: a,\n     orch: \"0000\"}\n", false},
	{"tab in a comment", "instances:\n  # a\tb\n  - dbid: a\n    orch: \"0000\"\n", false},
	{"non-ASCII in a trailing comment", "instances:\n  - dbid: a # café\n    orch: \"0000\"\n", false},
	{"non-ASCII in a quoted scalar", "instances:\n  - dbid: \"bücher\"\n    orch: \"0000\"\n", false},
	{"control character after a key", "instances: # \x01\n  - dbid: a\n    orch: \"0000\"\n", false},
	{"unknown service", "instances:\n  - dbid: a\n    orch: \"0000\"\n    backends: {smtp: [h:25]}\n", false},
}

func TestParseFastShapes(t *testing.T) {
	for _, tc := range fastShapes {
		t.Run(tc.name, func(t *testing.T) {
			_, ok := parseFast([]byte(tc.doc))
			if ok != tc.accept {
				t.Errorf("parseFast ok = %v, want %v", ok, tc.accept)
			}
			checkFastAgainstYAML(t, []byte(tc.doc))
		})
	}
}

// checkFastAgainstYAML fails if parseFast accepts data and yaml.v3 does not
// decode it to the same instances, or if Parse differs from parseYAML.
func checkFastAgainstYAML(t *testing.T, data []byte) {
	t.Helper()
	chunks, ok := parseFast(data)
	if !ok {
		return
	}
	fast := []spec{}
	for _, c := range chunks {
		if len(c) == 0 || len(c) > specChunk {
			t.Fatalf("parseFast made a chunk of %d instances", len(c))
		}
		fast = append(fast, c...)
	}
	var raw fileYAML
	if _, err := yamlutil.Decode("routes.yaml", data, &raw); err != nil {
		t.Fatalf("parseFast accepted what yaml.v3 refuses (%v):\n%s", err, data)
	}
	slow := make([]spec, len(raw.Instances))
	for i, in := range raw.Instances {
		slow[i] = specOf(in)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("parseFast = %#v\nyaml.v3   = %#v\nfor:\n%s", fast, slow, data)
	}
	ns := Namespace{Domain: "neo4j.io", Orchestras: []string{"0000", "00ab"}}
	got, gerr := Parse("routes.yaml", data, ns, nil)
	want, werr := parseYAML("routes.yaml", data, ns, nil)
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Fatalf("Parse error %v, parseYAML error %v", gerr, werr)
	}
	if gerr == nil && !reflect.DeepEqual(got.instances, want.instances) {
		t.Fatalf("Parse and parseYAML built different tables for:\n%s", data)
	}
}

// FuzzParseFast checks the fast path against yaml.v3 on any input: what it
// accepts must decode the same, and build the same table.
func FuzzParseFast(f *testing.F) {
	for _, tc := range fastShapes {
		f.Add([]byte(tc.doc))
	}
	f.Add([]byte(strings.Repeat("instances:\n  - dbid: a\n    orch: 0000\n", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastAgainstYAML(t, data)
	})
}

func TestValidEndpoint(t *testing.T) {
	for ep, want := range map[string]bool{
		"vpce-0a1b2c3d4e5f6a7b8": true, "azure:1234567": true, "psc:987654321": true,
		"vpce-": false, "vpce-0A1B": false, "azure:": false, "azure:12a": false, "psc:-1": false,
		"": false, "VPCE-01": false, "gcp:1": false, " vpce-1": false, "vpce-1 ": false, "vpce-1\n": false,
	} {
		if got := validEndpoint(ep); got != want {
			t.Errorf("validEndpoint(%q) = %v, want %v", ep, got, want)
		}
	}
}

// TestFastPathKnowsEverySchemaField: the instance schema is written in
// instanceYAML, and parseFast must know every field of it. A field added
// to the schema alone would send every file down the slow path without a
// test failing; this one fails instead.
func TestFastPathKnowsEverySchemaField(t *testing.T) {
	samples := map[reflect.Kind]string{
		reflect.String: "x",
		reflect.Bool:   "true",
		reflect.Slice:  "[vpce-1]",
		reflect.Map:    "{bolt: [\"h:1\"]}",
	}
	typ := reflect.TypeFor[instanceYAML]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		key := strings.Split(f.Tag.Get("yaml"), ",")[0]
		t.Run(key, func(t *testing.T) {
			doc := "instances:\n  - dbid: a\n    orch: \"0000\"\n"
			if key != "dbid" && key != "orch" {
				sample, ok := samples[f.Type.Kind()]
				if !ok {
					t.Fatalf("field %s of kind %s: give this test a sample value", key, f.Type.Kind())
				}
				doc += "    " + key + ": " + sample + "\n"
			}
			if _, ok := parseFast([]byte(doc)); !ok {
				t.Errorf("parseFast declines the schema field %q: teach fastparser.set about it\n%s", key, doc)
			}
			checkFastAgainstYAML(t, []byte(doc))
		})
	}
}
