package config

import (
	"strings"
	"testing"

	"github.com/neo4j/private-ingress/ingress"
)

// TestAbuseLimitsDefaults: the caps per source and per endpoint default to
// none, explanations to 50 a second, also from an empty or null section.
func TestAbuseLimitsDefaults(t *testing.T) {
	for _, doc := range []string{
		minimalConfig,
		minimalConfig + "limits: {}\n",
		minimalConfig + "limits: {max_connections: 10}\n",
		minimalConfig + "limits:\n  max_connections_per_source:\n  max_connections_per_endpoint:\n  max_explained_per_second:\n",
	} {
		cfg, err := Parse("ingress.yaml", []byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		l := cfg.Ingress.Limits
		if l.MaxConnectionsPerSource != 0 || l.MaxConnectionsPerEndpoint != 0 || l.MaxExplainedPerSecond != 50 ||
			ingress.DefaultMaxExplainedPerSecond != 50 {
			t.Errorf("%s: limits %+v, want no caps and 50 explanations a second", doc, l)
		}
	}
}

func TestAbuseLimitsValues(t *testing.T) {
	cfg, err := Parse("ingress.yaml", []byte(minimalConfig+
		"limits: {max_connections_per_source: 20, max_connections_per_endpoint: 500, max_explained_per_second: 7}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := ingress.Limits{MaxConnections: ingress.DefaultMaxConnections, MaxConnectionsPerSource: 20,
		MaxConnectionsPerEndpoint: 500, MaxExplainedPerSecond: 7}
	if cfg.Ingress.Limits != want {
		t.Errorf("limits %+v, want %+v", cfg.Ingress.Limits, want)
	}
	// 0 written out explains nothing: the ingress gets ExplainNever, not
	// the zero that would mean its default.
	cfg, err = Parse("ingress.yaml", []byte(minimalConfig+"limits: {max_explained_per_second: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Ingress.Limits.MaxExplainedPerSecond; got != ingress.ExplainNever {
		t.Errorf("max_explained_per_second: 0 became %d, want ExplainNever (%d)", got, ingress.ExplainNever)
	}
	// A changed value is a changed section (a reload says a restart is needed).
	a, _ := Parse("ingress.yaml", []byte(minimalConfig+"limits: {max_connections_per_source: 20}\n"))
	b, _ := Parse("ingress.yaml", []byte(minimalConfig+"limits: {max_connections_per_source: 21}\n"))
	if diff := Diff(a, b); len(diff) != 1 || !strings.Contains(diff[0], "limits") {
		t.Errorf("Diff = %q, want the limits named", diff)
	}
}

// TestAbuseLimitsErrors: negative values are errors at their file:line.
func TestAbuseLimitsErrors(t *testing.T) {
	for _, tc := range []struct{ limits, want string }{
		{"limits:\n  max_connections_per_source: -1\n",
			"ingress.yaml:4: limits.max_connections_per_source must not be negative (0 is no cap)"},
		{"limits:\n  max_connections: 10\n  max_connections_per_endpoint: -3\n",
			"ingress.yaml:5: limits.max_connections_per_endpoint must not be negative (0 is no cap)"},
		{"limits:\n  max_explained_per_second: -50\n",
			"ingress.yaml:4: limits.max_explained_per_second must not be negative (0 explains no refusal)"},
		{"limits:\n  max_connections_per_source: -1\n  max_connections_per_endpoint: -1\n  max_explained_per_second: -1\n",
			"ingress.yaml:4: limits.max_connections_per_source must not be negative (0 is no cap)\n" +
				"ingress.yaml:5: limits.max_connections_per_endpoint must not be negative (0 is no cap)\n" +
				"ingress.yaml:6: limits.max_explained_per_second must not be negative (0 explains no refusal)"},
		{"limits:\n  max_connections_per_sources: 5\n",
			"ingress.yaml:4: unknown key \"max_connections_per_sources\" in limits (known: max_connections, " +
				"max_connections_per_endpoint, max_connections_per_source, max_explained_per_second)"},
	} {
		_, err := Parse("ingress.yaml", []byte(minimalConfig+tc.limits))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s\nerr = %v\nwant %s", tc.limits, err, tc.want)
		}
	}
	_, err := Parse("ingress.yaml", []byte(minimalConfig+"limits:\n  max_explained_per_second: many\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "ingress.yaml:4: ") {
		t.Errorf("max_explained_per_second: many: err = %v, want one at ingress.yaml:4", err)
	}
}
