package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/neo4j/private-ingress/internal/opensslsign"
)

// flavour is what this test binary should report: make test also runs
// these tests with -tags openssl (and cgo).
func flavour() string {
	if opensslsign.Available {
		return "openssl"
	}
	return "pure-go"
}

func TestFromBuildInfo(t *testing.T) {
	settings := func(kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{}
		for i := 0; i < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	const rev, when = "0123456789abcdef0123456789abcdef01234567", "2026-12-01T10:00:00Z"
	for _, c := range []struct {
		name      string
		bi        *debug.BuildInfo
		openssl   bool
		rev, when string
		flavour   string
	}{
		{"no build info", nil, false, "unknown", "unknown", "pure-go"},
		{"go run: no VCS settings", settings("-trimpath", "true"), false, "unknown", "unknown", "pure-go"},
		{"clean checkout", settings("vcs", "git", "vcs.revision", rev, "vcs.time", when, "vcs.modified", "false"), false, rev, when, "pure-go"},
		{"modified tree", settings("vcs.revision", rev, "vcs.time", when, "vcs.modified", "true"), false, rev + "+dirty", when, "pure-go"},
		{"modified but no revision", settings("vcs.modified", "true"), false, "unknown", "unknown", "pure-go"},
		{"openssl", settings("vcs.revision", rev, "vcs.time", when), true, rev, when, "openssl"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := fromBuildInfo(c.bi, c.openssl)
			want := Info{Version: "dev", Revision: c.rev, Time: c.when, GoVersion: runtime.Version(), Flavour: c.flavour}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
			if fields := strings.Fields(got.String()); len(fields) != 6 || fields[0] != "ingress" {
				t.Errorf("String() = %q: want \"ingress\" and five fields", got.String())
			}
		})
	}
}

// TestRead: a test binary carries no VCS settings (go test does not stamp
// them).
func TestRead(t *testing.T) {
	want := "ingress dev unknown unknown " + runtime.Version() + " " + flavour()
	if got := Read().String(); got != want {
		t.Errorf("Read() = %q, want %q", got, want)
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(Collector()); err != nil {
		t.Fatal(err)
	}
	want := `# HELP ingress_build_info Always 1; the labels say which build is running.
# TYPE ingress_build_info gauge
ingress_build_info{flavour="` + flavour() + `",goversion="` + runtime.Version() + `",revision="unknown",version="dev"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ingress_build_info"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
