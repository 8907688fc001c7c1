package fleet_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neo4j/private-ingress/internal/fleet"
	"github.com/neo4j/private-ingress/internal/testenv/etcdtest"
	"github.com/neo4j/private-ingress/routing"
)

// TestRoutesPut is `ingress routes put` against a real etcd: several
// files are all validated before anything is written, so one bad file
// among them writes nothing; good ones are written together, each under
// its own key, which is the key a route source accepts them under.
func TestRoutesPut(t *testing.T) {
	etcd := etcdtest.Start(t)
	cli := etcd.Client()
	defer cli.Close()
	ctx := context.Background()
	routes := fleet.Routes{Client: cli, Prefix: prefix}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	one := write("one.yaml", "dbid: ABCD1234\norch: \"0000\"\npublic: true\nbackends: {bolt: [\"127.0.0.1:7687\"]}\n")
	two := write("two.json", instanceJSON("ef567890"))
	bad := write("bad.yaml", "dbid: 12345678\norch: \"0000\"\nbackends: {bolt: [\"no-port\"]}\n")
	list := func() map[string]string {
		t.Helper()
		kvs, err := routes.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, kv := range kvs {
			m[kv.Key] = string(kv.Value)
		}
		return m
	}

	t.Run("one bad file writes nothing", func(t *testing.T) {
		var out strings.Builder
		err := routes.Command(ctx, etcdNS, []string{"put", one, bad, two}, &out)
		if err == nil || !strings.Contains(err.Error(), "bad.yaml:3: ") {
			t.Errorf("put with a bad file: %v, want bad.yaml's error", err)
		}
		if out.Len() != 0 {
			t.Errorf("put with a bad file printed %q", out.String())
		}
		if m := list(); len(m) != 0 {
			t.Errorf("put with a bad file wrote %v", m)
		}
	})

	t.Run("two good files", func(t *testing.T) {
		var out strings.Builder
		if err := routes.Command(ctx, etcdNS, []string{"put", one, two}, &out); err != nil {
			t.Fatal(err)
		}
		keyOne, keyTwo := routing.Key(prefix, "0000", "abcd1234"), routing.Key(prefix, "0000", "ef567890")
		if want := "put " + keyOne + "\nput " + keyTwo + "\n"; out.String() != want {
			t.Errorf("put printed %q, want %q", out.String(), want)
		}
		m := list()
		if len(m) != 2 || !strings.Contains(m[keyOne], `"dbid":"ABCD1234"`) || !strings.Contains(m[keyTwo], `"dbid":"ef567890"`) {
			t.Fatalf("after put: %v", m)
		}
		// A route source takes both, each under its own key.
		var holder routing.Holder
		var rejected []error
		s := &routing.EtcdSource{Store: fleet.Store{Client: cli}, Prefix: prefix, Namespace: etcdNS, Holder: &holder,
			OnApply: func(_ *routing.Table, _ int, err error) {
				if err != nil {
					rejected = append(rejected, err)
				}
			}}
		if err := s.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if !found(&holder, "abcd1234") || !found(&holder, "ef567890") || len(rejected) > 0 {
			t.Errorf("a source over what put wrote: abcd1234=%v ef567890=%v, rejected %v", found(&holder, "abcd1234"), found(&holder, "ef567890"), rejected)
		}
	})

	t.Run("paused", func(t *testing.T) {
		paused := write("paused.yaml", "dbid: 5ca1ab1e\norch: \"0000\"\npaused: true\nbackends: {bolt: [\"127.0.0.1:7687\"]}\n")
		if err := routes.Command(ctx, etcdNS, []string{"put", paused}, &strings.Builder{}); err != nil {
			t.Fatal(err)
		}
		var holder routing.Holder
		s := &routing.EtcdSource{Store: fleet.Store{Client: cli}, Prefix: prefix, Namespace: etcdNS, Holder: &holder}
		if err := s.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if inst := holder.Load().Get("5ca1ab1e", "0000"); inst == nil || !inst.Paused {
			t.Errorf("an instance put with paused: true is %+v in a source over etcd, want it paused", inst)
		}
	})

	t.Run("the same instance twice", func(t *testing.T) {
		again := write("again.yaml", "dbid: abcd1234\norch: \"0000\"\nbackends: {bolt: [\"127.0.0.2:7687\"]}\n")
		before := list()
		if err := routes.Command(ctx, etcdNS, []string{"put", one, again}, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "abcd1234") {
			t.Errorf("put of one instance twice: %v, want an error naming it", err)
		}
		if m := list(); len(m) != len(before) || m[routing.Key(prefix, "0000", "abcd1234")] != before[routing.Key(prefix, "0000", "abcd1234")] {
			t.Errorf("put of one instance twice changed %v to %v", before, m)
		}
	})
}
