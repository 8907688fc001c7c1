package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/ingress"
)

func TestRevokeAfter(t *testing.T) {
	for _, tc := range []struct {
		name, routes string
		file, data   time.Duration // cfg.Routes.RevokeAfter, cfg.Ingress.RevokeAfter
	}{
		{"default", "", 10 * time.Second, 10 * time.Second},
		{"no value takes the default", "routes: {revoke_after: }\n", 10 * time.Second, 10 * time.Second},
		{"a grace", "routes: {revoke_after: 1m30s}\n", 90 * time.Second, 90 * time.Second},
		{"at once", "routes: {revoke_after: 0s}\n", 0, ingress.RevokeAtOnce},
		{"never", "routes: {revoke_after: -1s}\n", -time.Second, ingress.RevokeNever},
		{"with etcd", "routes: {etcd: {endpoints: [\"http://127.0.0.1:2379\"]}, revoke_after: 3s}\n", 3 * time.Second, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, t.TempDir(), minimalConfig+tc.routes)
			eq(t, "Routes.RevokeAfter", cfg.Routes.RevokeAfter, tc.file)
			eq(t, "Ingress.RevokeAfter", cfg.Ingress.RevokeAfter, tc.data)
		})
	}
}

func TestRevokeAfterErrors(t *testing.T) {
	for _, tc := range []struct{ name, routes, want string }{
		{"negative", "routes:\n  file: routes.yaml\n  revoke_after: -5s\n", "ingress.yaml:5: routes.revoke_after -5s: give 0s (close at once), a positive duration, or -1s (never)"},
		{"negative, not -1s", "routes: {revoke_after: -1ms}\n", "ingress.yaml:3: routes.revoke_after -1ms: give 0s"},
		{"no unit", "routes: {revoke_after: 10}\n", `ingress.yaml:3: "10" is not a duration: give a unit, e.g. 10s`},
		{"not a duration", "routes: {revoke_after: soon}\n", "ingress.yaml:3: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ingress.yaml")
			_, err := Parse(path, []byte(minimalConfig+tc.routes))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if got := strings.TrimPrefix(err.Error(), filepath.Dir(path)+string(filepath.Separator)); !strings.Contains(got, tc.want) {
				t.Errorf("error %q, want %q", got, tc.want)
			}
		})
	}
}

// A changed revoke_after takes a restart, like the rest of the routes section.
func TestRevokeAfterNeedsRestart(t *testing.T) {
	dir := t.TempDir()
	cur := mustParse(t, dir, minimalConfig)
	next := mustParse(t, dir, minimalConfig+"routes: {revoke_after: 1s}\n")
	if got := NeedRestart(cur, next); !slices.Contains(got, "routes") {
		t.Errorf("NeedRestart = %q, want routes named", got)
	}
	if got := NeedRestart(cur, mustParse(t, dir, minimalConfig+"routes: {revoke_after: 10s}\n")); len(got) != 0 {
		t.Errorf("NeedRestart = %q for the default spelt out", got)
	}
}
