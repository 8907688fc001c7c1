package routing

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadEntries: every file is read before anything is returned, and one
// wrong file yields no entries but every file's problem.
func TestReadEntries(t *testing.T) {
	ns := Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "dbid: abcd1234\norch: \"0000\"\npublic: true\nbackends: {bolt: [\"127.0.0.1:7687\"]}\n")
	other := write("other.json", `{"dbid": "ef567890", "orch": "0000", "public": true, "backends": {"bolt": ["127.0.0.1:7687"]}}`)
	bad := write("bad.yaml", "dbid: abcd1234\norch: \"9999\"\nbackends: {bolt: [\"127.0.0.1:7687\"]}\n")

	entries, err := ReadEntries([]string{good, other}, ns)
	if err != nil || len(entries) != 2 || entries[0].DBID != "abcd1234" || entries[1].DBID != "ef567890" {
		t.Fatalf("ReadEntries(good, other) = %+v, %v", entries, err)
	}
	entries, err = ReadEntries([]string{good, bad, filepath.Join(dir, "missing.yaml")}, ns)
	if err == nil || entries != nil {
		t.Fatalf("ReadEntries with a bad file = %+v, %v; want no entries and an error", entries, err)
	}
	for _, want := range []string{"bad.yaml:2", "missing.yaml"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}

	// One instance in two files: one transaction cannot put both.
	again := write("again.yaml", "dbid: ABCD1234\norch: \"0000\"\nbackends: {bolt: [\"127.0.0.2:7687\"]}\n")
	entries, err = ReadEntries([]string{good, other, again}, ns)
	if err == nil || entries != nil || !strings.Contains(err.Error(), "again.yaml: instance abcd1234 in orch 0000 is also in "+good) {
		t.Errorf("ReadEntries of one instance twice = %+v, %v", entries, err)
	}
}
