package routing_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/routing"
)

// rejectedFor returns the rejections that name key, in order.
func (s *source) rejectedFor(key string) []string {
	var out []string
	for _, err := range s.rejections() {
		if strings.Contains(err.Error(), "etcd:"+key+":") {
			out = append(out, err.Error())
		}
	}
	return out
}

func lookup(h *routing.Holder, dbid, orch string) *routing.Instance {
	inst, res := h.Load().Lookup(dbid + ".production-orch-" + orch + ".neo4j.io")
	if res != routing.Found {
		return nil
	}
	return inst
}

// boltAddrs lists inst's bolt backends.
func boltAddrs(inst *routing.Instance) string {
	var addrs []string
	for _, b := range inst.Pool(routing.Bolt).Order(time.Now(), nil) {
		addrs = append(addrs, b.Addr)
	}
	return strings.Join(addrs, ",")
}

// within fails t unless f returns within testenv.WaitTimeout: a failure
// bound for "does not wait on a lock", not a schedule.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(testenv.WaitTimeout):
		t.Fatalf("%s did not return within %v", what, testenv.WaitTimeout)
	}
}

// TestEtcdSourceBindsValuesToKeys: a value counts only under its own key
// <prefix><orch>/<dbid>. A value naming victim (public) under another
// dbid's key, under another orch's prefix, or under a key of another shape
// is refused, reported with its key, and victim stays as its own key says
// (private), through the watch and through a fresh replica's first Load.
// The key is compared with the value ASCII case-insensitively.
func TestEtcdSourceBindsValuesToKeys(t *testing.T) {
	ns := routing.Namespace{Domain: "neo4j.io", Orchestras: []string{"0000", "0001"}}
	victim := routing.Key(prefix, "0000", "victim")
	kv := newFakeKV()
	kv.put(victim, `{"dbid": "victim", "orch": "0000", "endpoints": ["vpce-1"], "backends": {"bolt": ["10.0.0.1:7687"]}}`)
	configure := func(s *routing.EtcdSource) { s.Namespace = ns }
	s := runSource(t, kv, configure)
	if inst := lookup(&s.holder, "victim", "0000"); inst == nil || inst.Public {
		t.Fatalf("victim after Load: %+v", inst)
	}

	hijack := `{"dbid": "victim", "orch": "0000", "public": true, "backends": {"bolt": ["10.6.6.6:7687"]}}`
	refusedKeys := map[string]string{ // key: what the refusal says
		prefix + "0000/0-unrelated":  "the value is instance victim in orch 0000, whose key is " + victim,
		prefix + "0001/victim":       "the value is instance victim in orch 0000, whose key is " + victim,
		prefix + "victim":            "not a route key",
		prefix + "0000/victim/extra": "not a route key",
		prefix + "0000/":             "not a route key",
		prefix + "/victim":           "not a route key",
		prefix + "0000/victim ":      "not a route key",
	}
	for key := range refusedKeys {
		kv.put(key, hijack)
	}
	// Case aside, the key is the value's own: accepted.
	upper := routing.Key(prefix, "0000", "UPPER123")
	kv.put(upper, `{"dbid": "upper123", "orch": "0000", "public": true, "backends": {"bolt": ["10.0.0.2:7687"]}}`)

	check := func(s *source, when string) {
		t.Helper()
		for key, want := range refusedKeys {
			testenv.WaitFor(t, when+": the refusal of "+key, func() bool { return len(s.rejectedFor(key)) > 0 })
			if got := s.rejectedFor(key)[0]; !strings.Contains(got, want) || !strings.Contains(got, "refused") {
				t.Errorf("%s: refusal of %s: %q, want it to say %q", when, key, got, want)
			}
		}
		testenv.WaitFor(t, when+": the upper-case key routed", func() bool { return lookup(&s.holder, "upper123", "0000") != nil })
		inst := lookup(&s.holder, "victim", "0000")
		if inst == nil || inst.Public || boltAddrs(inst) != "10.0.0.1:7687" {
			t.Errorf("%s: victim is %+v, want its own key's private route", when, inst)
		}
		if s.holder.Load().Len() != 2 {
			t.Errorf("%s: %d instances, want victim and upper123", when, s.holder.Load().Len())
		}
	}
	check(s, "through the watch")
	check(runSource(t, kv, configure), "a fresh replica's Load")
}

// TestEtcdSourceKeepsLastGoodAcrossReloads: a refused value never removes
// its key's last good route: not through the watch, not through a full
// reload (SIGHUP's Refresh, a lost watch, a compaction). A replica that
// never saw a good value routes nothing for the key and reports it.
func TestEtcdSourceKeepsLastGoodAcrossReloads(t *testing.T) {
	kv := newFakeKV()
	key := routing.Key(prefix, "0000", "abcd1234")
	kv.put(key, instanceJSON("abcd1234"))
	s := runSource(t, kv, nil)
	const bad = `{"dbid": "abcd1234", "orch": "0000", "backends": {"bolt": ["no-port"]}}`
	kv.put(key, bad)
	testenv.WaitFor(t, "the bad value to be reported", func() bool { return len(s.rejectedFor(key)) == 1 })
	if !found(&s.holder, "abcd1234") {
		t.Fatal("a bad put removed the instance")
	}

	// SIGHUP: a full Load, which reports the value again and keeps the route.
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !found(&s.holder, "abcd1234") {
		t.Error("a full reload removed the last good route of a key holding a bad value")
	}
	if n := len(s.rejectedFor(key)); n != 2 {
		t.Errorf("the reload reported the bad value %d times in all, want 2", n)
	}

	// The watch lost (the store away and back): the reload keeps it. Any
	// report of the key after the store is back is a reload's: loads fail
	// while it is down.
	reports := len(s.rejections())
	kv.set(func(f *fakeKV) { f.down = true })
	testenv.WaitFor(t, "the watch to end", func() bool { return len(s.rejections()) > reports })
	before := len(s.rejectedFor(key))
	kv.set(func(f *fakeKV) { f.down = false })
	testenv.WaitFor(t, "the reload after the watch ended", func() bool { return len(s.rejectedFor(key)) > before })
	if !found(&s.holder, "abcd1234") {
		t.Error("a reload after losing the watch removed the last good route")
	}

	// The watch behind a compaction: late1234, put and compacted away
	// while the watch was held, can only come through the reload.
	kv.set(func(f *fakeKV) { f.held = true })
	kv.put(routing.Key(prefix, "0000", "late1234"), instanceJSON("late1234"))
	kv.compact()
	kv.set(func(f *fakeKV) { f.held = false })
	testenv.WaitFor(t, "the reload after the compaction", func() bool { return found(&s.holder, "late1234") })
	if !found(&s.holder, "abcd1234") {
		t.Error("a reload after a compaction removed the last good route")
	}

	// A new replica while the bad value is stored: nothing for the key,
	// and it says so.
	fresh := runSource(t, kv, nil)
	if found(&fresh.holder, "abcd1234") || !found(&fresh.holder, "late1234") {
		t.Errorf("a fresh replica routes abcd1234=%v late1234=%v, want false, true", found(&fresh.holder, "abcd1234"), found(&fresh.holder, "late1234"))
	}
	if r := fresh.rejectedFor(key); len(r) != 1 || !strings.Contains(r[0], "no port") {
		t.Errorf("a fresh replica reported %q for the key, want its refusal", r)
	}

	// A good value again: routed as it says; a delete removes it.
	kv.put(key, `{"dbid": "abcd1234", "orch": "0000", "public": true, "backends": {"bolt": ["10.0.0.9:7687"]}}`)
	testenv.WaitFor(t, "the good value", func() bool {
		inst := lookup(&s.holder, "abcd1234", "0000")
		return inst != nil && boltAddrs(inst) == "10.0.0.9:7687"
	})
	kv.del(key)
	testenv.WaitFor(t, "the delete", func() bool { return !found(&s.holder, "abcd1234") })
}

// TestEtcdSourceStaleAnswersDuringAReload: /readyz asks Stale, which must
// not wait on a reload. A reload is held mid-parse through the parse hook,
// in applying the watch and in a full Load; Stale answers meanwhile, and
// the last table keeps serving.
func TestEtcdSourceStaleAnswersDuringAReload(t *testing.T) {
	kv := newFakeKV()
	kv.put(routing.Key(prefix, "0000", "abcd1234"), instanceJSON("abcd1234"))
	slow := routing.Key(prefix, "0000", "slow1234")
	var armed atomic.Bool
	entered := make(chan struct{})
	release := make(chan struct{})
	s := runSource(t, kv, func(s *routing.EtcdSource) {
		routing.SetParseHook(s, func(key string) {
			if key == slow && armed.CompareAndSwap(true, false) {
				entered <- struct{}{}
				<-release
			}
		})
	})
	// Runs before runSource's cleanup: a reload still held (the test
	// failed) must end for the source to stop.
	t.Cleanup(func() { close(release) })
	hold := func(start func()) {
		armed.Store(true)
		start()
		select {
		case <-entered:
		case <-time.After(testenv.WaitTimeout):
			t.Fatal("the reload never parsed the value")
		}
	}

	// In the watch.
	hold(func() { kv.put(slow, instanceJSON("slow1234")) })
	within(t, "Stale while the watch's reload parses", func() { s.Stale() })
	if !found(&s.holder, "abcd1234") {
		t.Error("the last table stopped serving during a reload")
	}
	release <- struct{}{}
	testenv.WaitFor(t, "the held put", func() bool { return found(&s.holder, "slow1234") })

	// In a full Load (SIGHUP).
	loaded := make(chan error, 1)
	hold(func() { go func() { loaded <- s.Refresh(context.Background()) }() })
	within(t, "Stale while a full reload parses", func() { s.Stale() })
	if !found(&s.holder, "abcd1234") || !found(&s.holder, "slow1234") {
		t.Error("the last table stopped serving during a reload")
	}
	release <- struct{}{}
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
}

// TestEtcdSourceRefusesAliasBombs: an etcd value that aliases blow up is
// refused with its key and line, and the key keeps its last good value.
func TestEtcdSourceRefusesAliasBombs(t *testing.T) {
	kv := newFakeKV()
	key := routing.Key(prefix, "0000", "abcd1234")
	kv.put(key, instanceJSON("abcd1234"))
	s := runSource(t, kv, nil)
	start := time.Now()
	doc, line := routing.EntryBomb()
	kv.put(key, doc)
	testenv.WaitFor(t, "the bomb to be refused", func() bool { return len(s.rejectedFor(key)) > 0 })
	t.Logf("refused in %v", time.Since(start))
	if got := s.rejectedFor(key)[0]; !strings.Contains(got, fmt.Sprintf("etcd:%s:%d: document expands to more than", key, line)) {
		t.Errorf("refusal: %q", got)
	}
	if !found(&s.holder, "abcd1234") {
		t.Error("the bomb removed the key's last good value")
	}
}
