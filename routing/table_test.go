package routing

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var testNS = Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}}

const testRoutes = `instances:
  - dbid: abcd1234
    orch: "0000"
    public: true
    endpoints: ["vpce-0a1b2c3d4e5f6a7b8", "azure:1234567", "psc:987654321"]
    backends:
      bolt:  ["10.0.1.5:7687", "10.0.1.6:7687", "10.0.1.7:7687"]
      https: ["10.0.1.5:7473"]
      http:  ["10.0.1.5:7474"]
      arrow: ["10.0.1.5:8491"]
  - dbid: EFGH5678
    orch: "0000"
    public: false
    endpoints: ["vpce-0123abc"]
    backends:
      bolt: ["db2.internal:7687"]
`

func mustParse(t testing.TB, doc string, prev *Table) *Table {
	t.Helper()
	tb, err := Parse("routes.yaml", []byte(doc), testNS, prev)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tb
}

func addrs(bs []*Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Addr
	}
	return out
}

func TestLookup(t *testing.T) {
	tb := mustParse(t, testRoutes, nil)
	if tb.Len() != 2 {
		t.Fatalf("Len = %d; want 2", tb.Len())
	}
	if got := tb.Namespace(); got.Domain != testNS.Domain || !slices.Equal(got.Orchestras, testNS.Orchestras) {
		t.Errorf("Namespace() = %+v; want %+v", got, testNS)
	}
	tests := []struct {
		name     string
		host     string
		want     Result
		wantDBID string // of the instance found
	}{
		{"first instance", "abcd1234.production-orch-0000.neo4j.io", Found, "abcd1234"},
		{"first instance upper case", "ABCD1234.PRODUCTION-ORCH-0000.NEO4J.IO", Found, "abcd1234"},
		{"first instance trailing dot", "abcd1234.production-orch-0000.neo4j.io.", Found, "abcd1234"},
		{"second instance (upper case in routes)", "efgh5678.production-orch-0000.neo4j.io", Found, "efgh5678"},
		{"second instance mixed case and trailing dot", "EfGh5678.Production-Orch-0000.Neo4j.IO.", Found, "efgh5678"},
		{"no name", "", NoName, ""},
		{"other orch", "abcd1234.production-orch-0001.neo4j.io", OtherOrch, ""},
		{"other domain", "abcd1234.production-orch-0000.neo4j.com", UnknownHost, ""},
		{"domain suffix without dot", "abcd1234.production-orch-0000.evilneo4j.io", UnknownHost, ""},
		{"garbage", "garbage", UnknownHost, ""},
		{"IP literal", "10.0.0.1", UnknownHost, ""},
		{"bare zone", "production-orch-0000.neo4j.io", UnknownHost, ""},
		{"extra label", "x.abcd1234.production-orch-0000.neo4j.io", UnknownHost, ""},
		{"double trailing dot", "abcd1234.production-orch-0000.neo4j.io..", UnknownHost, ""},
		{"unknown dbid", "zzzz9999.production-orch-0000.neo4j.io", UnknownDBID, ""},
		{"unknown 63-char dbid", strings.Repeat("z", 63) + ".production-orch-0000.neo4j.io", UnknownDBID, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inst, res := tb.Lookup(tc.host)
			if res != tc.want {
				t.Fatalf("Lookup(%q) result = %v; want %v", tc.host, res, tc.want)
			}
			if tc.want != Found {
				if inst != nil {
					t.Errorf("Lookup(%q) = %+v with result %v; want nil instance", tc.host, inst, res)
				}
				return
			}
			if inst == nil {
				t.Fatalf("Lookup(%q) = nil, Found", tc.host)
			}
			if inst.DBID != tc.wantDBID || inst.Orch != "0000" {
				t.Errorf("Lookup(%q) found %s.%s; want %s.0000", tc.host, inst.DBID, inst.Orch, tc.wantDBID)
			}
		})
	}
}

// An orchestra served in upper case in the namespace still matches.
func TestLookupServedOrchCaseInsensitive(t *testing.T) {
	ns := Namespace{Domain: "neo4j.io", Orchestras: []string{"00ab"}}
	tb, err := Parse("routes.yaml", []byte("instances:\n  - {dbid: x1, orch: 00AB}\n"), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"x1.production-orch-00ab.neo4j.io", "X1.PRODUCTION-ORCH-00AB.NEO4J.IO"} {
		if inst, res := tb.Lookup(host); res != Found || inst.Orch != "00ab" {
			t.Errorf("Lookup(%q) = %+v, %v; want orch 00ab, Found", host, inst, res)
		}
	}
}

func TestAllows(t *testing.T) {
	tb := mustParse(t, testRoutes, nil)
	public, _ := tb.Lookup("abcd1234.production-orch-0000.neo4j.io")
	private, _ := tb.Lookup("efgh5678.production-orch-0000.neo4j.io")
	if public == nil || private == nil {
		t.Fatal("instances not found")
	}
	tests := []struct {
		name     string
		inst     *Instance
		endpoint string
		want     bool
	}{
		{"public instance, public traffic", public, "", true},
		{"public instance, listed AWS endpoint", public, "vpce-0a1b2c3d4e5f6a7b8", true},
		{"public instance, listed Azure endpoint", public, "azure:1234567", true},
		{"public instance, listed GCP endpoint", public, "psc:987654321", true},
		// The private-endpoint issue's rule, stricter than DESIGN.md's wording
		// (see the README): an endpoint id must be listed even for a public
		// instance, so one customer's endpoint never reaches another's database.
		{"public instance, unlisted endpoint", public, "vpce-ffff", false},
		{"private instance, public traffic", private, "", false},
		{"private instance, listed endpoint", private, "vpce-0123abc", true},
		{"private instance, other endpoint", private, "vpce-0a1b2c3d4e5f6a7b8", false},
		{"private instance, endpoint differing in case", private, "VPCE-0123ABC", false},
		{"private instance, endpoint prefix", private, "vpce-0123", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.inst.Allows(tc.endpoint); got != tc.want {
				t.Errorf("%s.Allows(%q) = %v; want %v", tc.inst.DBID, tc.endpoint, got, tc.want)
			}
		})
	}
}

func TestPoolContents(t *testing.T) {
	tb := mustParse(t, testRoutes, nil)
	now := time.Unix(1_700_000_000, 0)
	public, _ := tb.Lookup("abcd1234.production-orch-0000.neo4j.io")
	private, _ := tb.Lookup("efgh5678.production-orch-0000.neo4j.io")
	tests := []struct {
		name string
		inst *Instance
		svc  Service
		want []string
	}{
		{"bolt cluster", public, Bolt, []string{"10.0.1.5:7687", "10.0.1.6:7687", "10.0.1.7:7687"}},
		{"https", public, HTTPS, []string{"10.0.1.5:7473"}},
		{"http", public, HTTP, []string{"10.0.1.5:7474"}},
		{"arrow", public, Arrow, []string{"10.0.1.5:8491"}},
		{"private bolt", private, Bolt, []string{"db2.internal:7687"}},
		{"private https (none)", private, HTTPS, []string{}},
		{"private arrow (none)", private, Arrow, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.inst.Pool(tc.svc)
			if p.Len() != len(tc.want) {
				t.Fatalf("Pool(%v).Len() = %d; want %d", tc.svc, p.Len(), len(tc.want))
			}
			// The first Order of a fresh pool starts at the first backend.
			got := addrs(p.Order(now, nil))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Pool(%v).Order = %q; want %q", tc.svc, got, tc.want)
			}
		})
	}
}

func TestSharedBackendAcrossInstances(t *testing.T) {
	doc := `instances:
  - {dbid: a1, orch: "0000", backends: {bolt: ["10.0.0.1:7687"]}}
  - {dbid: a2, orch: "0000", backends: {bolt: ["10.0.0.1:7687"]}}
`
	tb := mustParse(t, doc, nil)
	a1, _ := tb.Lookup("a1.production-orch-0000.neo4j.io")
	a2, _ := tb.Lookup("a2.production-orch-0000.neo4j.io")
	now := time.Unix(1_700_000_000, 0)
	if b1, b2 := a1.Pool(Bolt).Order(now, nil)[0], a2.Pool(Bolt).Order(now, nil)[0]; b1 != b2 {
		t.Errorf("one address gave two Backends (%p, %p); want one shared Backend", b1, b2)
	}
}

func TestHas(t *testing.T) {
	tb := mustParse(t, testRoutes, nil)
	tests := []struct {
		dbid, orch string
		want       bool
	}{
		{"abcd1234", "0000", true},
		{"ABCD1234", "0000", true},
		{"efgh5678", "0000", true},
		{"EFGH5678", "0000", true},
		{"abcd1234", "0001", false},
		{"zzzz9999", "0000", false},
		{"", "", false},
		{"abcd1234", "", false},
		{strings.Repeat("a", 200), "0000", false}, // longer than any key: no panic
		{strings.Repeat("a", 63), strings.Repeat("0", 63), false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%.20s/%.20s", tc.dbid, tc.orch), func(t *testing.T) {
			if got := tb.Has(tc.dbid, tc.orch); got != tc.want {
				t.Errorf("Has(%q, %q) = %v; want %v", tc.dbid, tc.orch, got, tc.want)
			}
		})
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	tb := mustParse(t, testRoutes, nil)
	for _, host := range []string{
		"ABCD1234.PRODUCTION-ORCH-0000.NEO4J.IO",  // found
		"ABCD1234.PRODUCTION-ORCH-0000.NEO4J.IO.", // found, trailing dot
		"ZZZZ9999.PRODUCTION-ORCH-0000.NEO4J.IO",  // unknown dbid
		"ABCD1234.PRODUCTION-ORCH-0001.NEO4J.IO",  // unknown host
	} {
		allocs := testing.AllocsPerRun(1000, func() {
			tb.Lookup(host)
		})
		if allocs != 0 {
			t.Errorf("Lookup(%q) allocates %v times per call; want 0", host, allocs)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		tb.Has("ABCD1234", "0000")
	})
	if allocs != 0 {
		t.Errorf("Has allocates %v times per call; want 0", allocs)
	}
}

func TestHolder(t *testing.T) {
	var h Holder
	empty := h.Load()
	if empty == nil {
		t.Fatal("zero Holder: Load() = nil; want an empty table")
	}
	if empty.Len() != 0 {
		t.Errorf("zero Holder: Len() = %d; want 0", empty.Len())
	}
	if _, res := empty.Lookup(""); res != NoName {
		t.Errorf("zero Holder: Lookup(\"\") = %v; want NoName", res)
	}
	for _, host := range []string{"abcd1234.production-orch-0000.neo4j.io", "x", ".", "..", "a.production-orch-0.."} {
		if inst, res := empty.Lookup(host); inst != nil || res != UnknownHost {
			t.Errorf("zero Holder: Lookup(%q) = %v, %v; want nil, UnknownHost", host, inst, res)
		}
	}
	if empty.Has("abcd1234", "0000") {
		t.Error("zero Holder: Has = true")
	}

	tb := mustParse(t, testRoutes, nil)
	h.Store(tb)
	if got := h.Load(); got != tb {
		t.Errorf("Load() after Store = %p; want %p", got, tb)
	}
}

func TestHolderConcurrent(t *testing.T) {
	var h Holder
	t1 := mustParse(t, testRoutes, nil)
	t2 := mustParse(t, testRoutes, t1)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				if g == 0 && i%2 == 0 {
					h.Store(t1)
				} else if g == 0 {
					h.Store(t2)
				}
				tb := h.Load()
				tb.Lookup("abcd1234.production-orch-0000.neo4j.io")
			}
		})
	}
	wg.Wait()
}

func TestServiceNames(t *testing.T) {
	for s := range NumServices {
		name := s.String()
		got, ok := ParseService(name)
		if !ok || got != s {
			t.Errorf("ParseService(%q) = %v, %v; want %v, true", name, got, ok, s)
		}
	}
	if _, ok := ParseService("BOLT"); ok {
		t.Error(`ParseService("BOLT") accepted`)
	}
	if got := NumServices.String(); got != "unknown" {
		t.Errorf("NumServices.String() = %q; want unknown", got)
	}
	if want := []string{"https", "bolt", "http", "arrow"}; !slices.Equal(ServiceNames(), want) {
		t.Errorf("ServiceNames() = %q; want %q", ServiceNames(), want)
	}
}

// bigRoutes returns a routes document of n instances in orch 0000, each with
// one bolt and one https backend, and the upper-case names of the instances.
func bigRoutes(n int) (doc []byte, names []string) {
	var b strings.Builder
	b.Grow(n * 160)
	b.WriteString("instances:\n")
	names = make([]string, n)
	for i := range n {
		dbid := fmt.Sprintf("db%06x", i)
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
		fmt.Fprintf(&b, "  - dbid: %s\n    orch: \"0000\"\n    public: %v\n    endpoints: [\"vpce-%06x\"]\n    backends:\n      bolt: [\"%s:7687\"]\n      https: [\"%s:7473\"]\n",
			dbid, i%2 == 0, i, ip, ip)
		names[i] = strings.ToUpper(dbid) + ".PRODUCTION-ORCH-0000.NEO4J.IO"
	}
	return []byte(b.String()), names
}

const bigN = 100_000

var bigTable = sync.OnceValues(func() (*Table, []string) {
	doc, names := bigRoutes(bigN)
	tb, err := Parse("routes.yaml", doc, testNS, nil)
	if err != nil {
		panic(err)
	}
	return tb, names
})

func BenchmarkLookup(b *testing.B) {
	tb, names := bigTable()
	if tb.Len() != bigN {
		b.Fatalf("Len = %d; want %d", tb.Len(), bigN)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, res := tb.Lookup(names[i]); res != Found {
			b.Fatalf("Lookup(%q) = %v", names[i], res)
		}
		i++
		if i == len(names) {
			i = 0
		}
	}
}

// BenchmarkLookupDuringReload looks names up in the live table while
// another goroutine reloads 100,000 instances over and over, as a routes
// file watch does: the data path reads the old table until the new one is
// swapped in. max-gap-µs is the longest wait between two lookups: with
// GOMAXPROCS=1 (the ingress's setting on small nodes) the reload itself
// holds the core for about a millisecond at a time (1,024 instances, or
// the table's two presized maps: ~4 ms), where it held it for scheduler
// slices of 10-60 ms before it yielded. Longer gaps are the GC's mark
// worker, which on one P runs in slices of up to ~10 ms whatever
// allocates; the reload's part there is its garbage. This loop never
// blocks, so the reload only gets what preemption gives it; a proxy's
// goroutines block on the network and leave it more.
func BenchmarkLookupDuringReload(b *testing.B) {
	tb, names := bigTable()
	doc, _ := bigRoutes(bigN)
	var live atomic.Pointer[Table]
	live.Store(tb)
	stop := make(chan struct{})
	reloads := make(chan int)
	go func() {
		n := 0
		defer func() { reloads <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			next, err := Parse("routes.yaml", doc, testNS, live.Load())
			if err != nil {
				panic(err)
			}
			live.Store(next)
			n++
		}
	}()
	var maxGap time.Duration
	last := time.Now()
	i := 0
	for b.Loop() {
		if _, res := live.Load().Lookup(names[i]); res != Found {
			b.Fatalf("Lookup(%q) = %v", names[i], res)
		}
		if i++; i == len(names) {
			i = 0
		}
		now := time.Now()
		maxGap = max(maxGap, now.Sub(last))
		last = now
	}
	close(stop)
	b.ReportMetric(float64(<-reloads), "reloads")
	b.ReportMetric(float64(maxGap.Microseconds()), "max-gap-µs")
}

func BenchmarkLookupUnknownDBID(b *testing.B) {
	tb, _ := bigTable()
	b.ReportAllocs()
	for b.Loop() {
		if _, res := tb.Lookup("ZZZZ9999.PRODUCTION-ORCH-0000.NEO4J.IO"); res != UnknownDBID {
			b.Fatal(res)
		}
	}
}

func BenchmarkSplitName(b *testing.B) {
	_, names := bigTable()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, ok := SplitName(names[i], "neo4j.io"); !ok {
			b.Fatalf("SplitName(%q) refused", names[i])
		}
		i++
		if i == len(names) {
			i = 0
		}
	}
}

// BenchmarkParse100k measures a full reload of a 100,000-instance routes
// file: ns/op is the time one reload takes.
func BenchmarkParse100k(b *testing.B) {
	doc, _ := bigRoutes(bigN)
	prev, _ := bigTable()
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		tb, err := Parse("routes.yaml", doc, testNS, prev)
		if err != nil {
			b.Fatal(err)
		}
		if tb.Len() != bigN {
			b.Fatalf("Len = %d", tb.Len())
		}
	}
}
