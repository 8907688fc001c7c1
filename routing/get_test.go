package routing

import (
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	ns := Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}}
	table, err := Parse("routes.yaml", []byte(`instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {bolt: ["10.0.0.1:7687"]}}
`), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	if inst := table.Get("abcd1234", "0000"); inst == nil || inst.DBID != "abcd1234" || !inst.Public {
		t.Errorf("Get(abcd1234, 0000) = %+v", inst)
	}
	if inst := table.Get("ABCD1234", "0000"); inst == nil {
		t.Error("Get is not case-insensitive")
	}
	for _, k := range [][2]string{{"abcd1234", "0001"}, {"ef567890", "0000"}, {strings.Repeat("a", 200), "0000"}, {"", ""}} {
		if inst := table.Get(k[0], k[1]); inst != nil {
			t.Errorf("Get(%q, %q) = %+v, want nil", k[0], k[1], inst)
		}
	}
	if n := testing.AllocsPerRun(100, func() { table.Get("abcd1234", "0000") }); n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
}
