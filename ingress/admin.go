package ingress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves /metrics from gatherer, /healthz (the process is up),
// /readyz (200 while ready() is true, 503 while starting or draining, so
// that a load balancer stops sending before connections are refused), and
// Go's profiler under /debug/pprof/ (the admin address is loopback by
// default: expose it no further than metrics).
// detail, if not nil, adds a line to /readyz's body (say, that the routes
// are stale) without changing its status.
func AdminHandler(gatherer prometheus.Gatherer, ready func() bool, detail func() string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
		if detail != nil {
			if d := detail(); d != "" {
				fmt.Fprintln(w, d)
			}
		}
	})
	return mux
}

// Admin is the admin HTTP server.
type Admin struct {
	srv *http.Server
	ln  net.Listener
}

// ListenAdmin binds the admin server on addr, through listen if not nil.
func ListenAdmin(ctx context.Context, listen ListenFunc, addr string, h http.Handler) (*Admin, error) {
	if listen == nil {
		listen = defaultListen
	}
	ln, err := listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s (admin): %w", addr, err)
	}
	return &Admin{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}, nil
}

// Addr returns the bound address.
func (a *Admin) Addr() net.Addr { return a.ln.Addr() }

// Serve serves until Close.
func (a *Admin) Serve() error {
	if err := a.srv.Serve(a.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin server: %w", err)
	}
	return nil
}

// Close stops the admin server.
func (a *Admin) Close() error { return a.srv.Close() }
