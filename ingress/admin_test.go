package ingress_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/neo4j/private-ingress/ingress"
)

// TestAdminProfilerIsOptIn: /debug/pprof/ is 404 unless admin.pprof adds
// it; the other endpoints answer either way.
func TestAdminProfilerIsOptIn(t *testing.T) {
	base := ingress.AdminHandler(prometheus.NewRegistry(), func() bool { return true }, nil)
	for _, tc := range []struct {
		name    string
		handler http.Handler
		pprof   int
	}{
		{"default", base, http.StatusNotFound},
		{"admin.pprof", ingress.WithProfiling(base), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for path, want := range map[string]int{
				"/debug/pprof/":          tc.pprof,
				"/debug/pprof/goroutine": tc.pprof,
				"/healthz":               http.StatusOK,
				"/readyz":                http.StatusOK,
				"/metrics":               http.StatusOK,
			} {
				w := httptest.NewRecorder()
				tc.handler.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
				if w.Code != want {
					t.Errorf("GET %s = %d, want %d", path, w.Code, want)
				}
			}
		})
	}
}
