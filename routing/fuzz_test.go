package routing

import (
	"errors"
	"strings"
	"testing"

	"github.com/neo4j/private-ingress/internal/yamlutil"
)

// asciiUpper upper-cases ASCII letters only, keeping every other byte.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

func FuzzSplitName(f *testing.F) {
	for _, s := range []string{
		"abcd1234.production-orch-0000.neo4j.io",
		"ABCD1234.PRODUCTION-ORCH-0000.NEO4J.IO",
		"ABCD1234.PRODUCTION-ORCH-00AB.NEO4J.IO",
		"abcd1234.production-orch-0000.neo4j.io.",
		"abcd1234.production-orch-0000.neo4j.io..",
		"a.abcd1234.production-orch-0000.neo4j.io",
		"abcd1234..neo4j.io",
		".production-orch-0000.neo4j.io",
		"10.0.0.1",
		"[::1]",
		"abcd1234.production-orch-0001.neo4j.io",
		"abcd1234.production-orch-0000.neo4j.com",
		"abcd1234.production-orch-0000.evilneo4j.io",
		"abcd1234.production-orch-.neo4j.io",
		"abcd1234.production-orch--x.neo4j.io",
		"xn--bcher-kva.production-orch-0000.neo4j.io",
		"bücher.production-orch-0000.neo4j.io",
		strings.Repeat("a", 63) + ".production-orch-0000.neo4j.io",
		strings.Repeat("a", 64) + ".production-orch-0000.neo4j.io",
		strings.Repeat("a.", 130) + "neo4j.io",
		"-abcd.production-orch-0000.neo4j.io",
		"abcd-.production-orch-0000.neo4j.io",
		"production-orch-0000.neo4j.io",
		"",
		".",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		dbid, orch, ok := SplitName(host, testDomain)

		// Case and one trailing dot never change the verdict.
		if _, _, ok2 := SplitName(asciiUpper(host), testDomain); ok2 != ok {
			t.Errorf("SplitName(%q) ok=%v but upper case ok=%v", host, ok, ok2)
		}
		if !strings.HasSuffix(host, ".") {
			if d2, o2, ok2 := SplitName(host+".", testDomain); ok2 != ok || d2 != dbid || o2 != orch {
				t.Errorf("SplitName(%q) = %q, %q, %v but with a trailing dot %q, %q, %v", host, dbid, orch, ok, d2, o2, ok2)
			}
		}

		if !ok {
			if dbid != "" || orch != "" {
				t.Errorf("SplitName(%q) refused but returned %q, %q", host, dbid, orch)
			}
			return
		}
		if !strings.HasPrefix(host, dbid+".") || !strings.Contains(host, orch) {
			t.Errorf("SplitName(%q) = %q, %q: not substrings of the input", host, dbid, orch)
		}
		if len(strings.TrimSuffix(host, ".")) > maxName {
			t.Errorf("SplitName accepted a %d-byte name", len(host))
		}
		if !ValidLabel(dbid) || !ValidLabel(orchPrefix+orch) {
			t.Errorf("SplitName(%q) = %q, %q: not valid labels", host, dbid, orch)
		}
		name := dbid + ".production-orch-" + orch + ".neo4j.io"
		if !strings.EqualFold(name, strings.TrimSuffix(host, ".")) {
			t.Errorf("SplitName(%q) = %q, %q: reassembles to %q", host, dbid, orch, name)
		}
		d2, o2, ok2 := SplitName(name, testDomain)
		if !ok2 || !strings.EqualFold(d2, dbid) || !strings.EqualFold(o2, orch) {
			t.Errorf("reassembled %q split to %q, %q, %v; want %q, %q, true", name, d2, o2, ok2, dbid, orch)
		}
		if !strings.EqualFold(ZoneName(orch, testDomain), name[len(dbid)+1:]) {
			t.Errorf("ZoneName(%q) = %q; want the rest of %q", orch, ZoneName(orch, testDomain), name)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		testRoutes,
		"",
		"instances: []\n",
		"instances:\n  - {dbid: a, orch: \"0000\"}\n  - {dbid: A, orch: \"0000\"}\n",
		"instances:\n  - dbid: a\n    orch: 0000\n    backends: {bolt: [\"h:1\", \"h:1\"]}\n",
		"foo: 1\n",
		"instances:\n  - dbid: a\n    orch: \"0000\n",
		"instances:\n  - dbid: a\n    orch: \"0000\"\n    backends: \"10.0.0.1:7687\"\n",
		"instances:\n  - dbid: a_b\n    orch: \"0001\"\n    endpoints: [vpce-BAD]\n    backends: {smtp: [x], bolt: [\"h:0\"], http: []}\n",
		"instances: &x\n  - {dbid: a, orch: \"0000\"}\n",
		"instances:\n  - &i {dbid: a, orch: \"0000\"}\n  - *i\n",
		"instances:\n  - <<: {dbid: a}\n    orch: \"0000\"\n",
		"- a\n",
		"instances: foo\n",
		"instances: [foo, 1, null, []]\n",
		"instances:\n  - dbid: ABC\n    orch: 00ab\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ns := Namespace{Domain: "neo4j.io", Orchestras: []string{"0000", "00ab"}}
		tb, err := Parse("routes.yaml", data, ns, nil)
		if err != nil {
			if tb != nil {
				t.Fatalf("Parse returned a table and an error: %v", err)
			}
			var es yamlutil.Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T is not a non-empty yamlutil.Errors: %v", err, err)
			}
			for i, e := range es {
				if e.File != "routes.yaml" || e.Msg == "" {
					t.Errorf("error %d: %#v", i, e)
				}
				if i > 0 && e.Line < es[i-1].Line {
					t.Errorf("errors out of line order: %v", err)
				}
			}
			return
		}
		if tb == nil {
			t.Fatal("Parse returned neither a table nor an error")
		}
		// Every instance is found by its own name, in either case.
		for key, inst := range tb.instances {
			if key != inst.DBID+"."+inst.Orch {
				t.Errorf("instance %s.%s stored under %q", inst.DBID, inst.Orch, key)
			}
			name := inst.DBID + ".production-orch-" + inst.Orch + ".neo4j.io"
			for _, host := range []string{name, asciiUpper(name) + "."} {
				if got, res := tb.Lookup(host); res != Found || got != inst {
					t.Errorf("Lookup(%q) = %p, %v; want %p, Found", host, got, res, inst)
				}
			}
			if !tb.Has(inst.DBID, inst.Orch) {
				t.Errorf("Has(%q, %q) = false", inst.DBID, inst.Orch)
			}
			for s := range NumServices {
				for _, b := range inst.Pool(s).backends {
					if tb.backends[b.Addr] != b {
						t.Errorf("backend %q is not the table's shared Backend", b.Addr)
					}
				}
			}
		}
		// Parsing again with the table as prev gives the same instances and
		// keeps every backend.
		tb2, err := Parse("routes.yaml", data, ns, tb)
		if err != nil {
			t.Fatalf("second Parse of an accepted document: %v", err)
		}
		if tb2.Len() != tb.Len() {
			t.Fatalf("second Parse: %d instances; first %d", tb2.Len(), tb.Len())
		}
		for addr, b := range tb2.backends {
			if tb.backends[addr] != b {
				t.Errorf("backend %q not carried over", addr)
			}
		}
	})
}
