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

// AdminHandler serves /metrics from gatherer, /healthz (the process is up)
// and /readyz (200 while ready() is true, 503 while starting or draining,
// so that a load balancer stops sending before connections are refused).
// detail, if not nil, adds a line to /readyz's body (say, that the routes
// are stale) without changing its status. Everything else is 404; Go's
// profiler is added by WithProfiling, only when admin.pprof asks for it.
func AdminHandler(gatherer prometheus.Gatherer, ready func() bool, detail func() string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
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

// WithProfiling adds Go's profiler under /debug/pprof/ to h (admin.pprof):
// goroutine dumps with source paths, heap and CPU profiles. Expose it no
// further than an operator's own tools.
func WithProfiling(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}

// The admin server's bounds: a client that trickles its request, or holds
// an idle connection, is let go. The write bound leaves room for the
// profiler's default 30-second CPU profile.
const (
	adminReadHeaderTimeout = 5 * time.Second
	adminReadTimeout       = 10 * time.Second
	adminWriteTimeout      = 2 * time.Minute
	adminIdleTimeout       = time.Minute
	adminMaxHeaderBytes    = 16 << 10
)

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
	return &Admin{ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		MaxHeaderBytes:    adminMaxHeaderBytes,
	}}, nil
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
