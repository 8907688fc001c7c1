package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/config"
	"github.com/neo4j/private-ingress/internal/etcdkv"
	"github.com/neo4j/private-ingress/internal/handover"
	"github.com/neo4j/private-ingress/internal/logging"
	"github.com/neo4j/private-ingress/internal/tasks"
	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// serve runs the ingress for the config at path until ctx is cancelled
// (SIGTERM, Ctrl-C), then drains.
func serve(ctx context.Context, path string, stderr io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	logger, err := logging.New(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer logger.Sync()
	return runIngress(ctx, cfg, logger, nil)
}

// started, if set, is called once the ingress accepts connections.
type startedFunc func(srv *ingress.Server, dns *dnsstub.Server, admin *ingress.Admin)

// runIngress wires routing, certificates, the data path and the admin
// server together, handles SIGHUP and SIGUSR2, and drains when ctx ends or
// a new process has taken over.
func runIngress(ctx context.Context, cfg *config.Config, logger *zap.Logger, started startedFunc) error {
	sockets, err := handover.FromEnv() // a previous process's sockets (SIGUSR2), or none
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := ingress.NewMetrics(reg)
	etcd, err := dialFleet(cfg, logger)
	if err != nil {
		return err
	}
	if etcd != nil {
		defer etcd.Close()
	}
	bg := tasks.New(logger) // stopped last: after the drain
	defer bg.Stop()

	// The first routes load must succeed; later bad files (or etcd values)
	// keep the last good table.
	var routes routing.Holder
	routeSrc, err := newRouteSource(ctx, cfg, etcd, &routes, func(t *routing.Table, err error) {
		metrics.Reloaded(err)
		if err != nil {
			logger.Error("routes reload failed; keeping the last good table", zap.Error(err))
			return
		}
		metrics.SetRoutes(t.Len())
		logger.Info("routes loaded", zap.Int("instances", t.Len()))
	})
	if err != nil {
		return err
	}
	certs, tickets, err := newCertificates(ctx, cfg, etcd, reg, bg, logger)
	if err != nil {
		return err
	}
	defer certs.Close()
	srv, err := ingress.New(cfg.Ingress, ingress.Options{
		Routes: &routes, Certs: certs, Logger: logger, Metrics: metrics,
		SessionTickets: tickets, Listen: sockets.Listen,
	})
	if err != nil {
		return err
	}
	dnsSrv, admin, err := listen(ctx, cfg, sockets, srv, &routes, reg, routeSrc, logger)
	if err != nil {
		return err
	}

	onReload := func(failed string) func(error) {
		return func(err error) {
			metrics.Reloaded(err)
			if err != nil {
				logger.Error(failed, zap.Error(err))
			}
		}
	}
	bg.Go("routes watcher", routeSrc.Run)
	bg.Go("certificate watcher", func(ctx context.Context) error {
		return certs.Watch(ctx, onReload("certificate reload failed; keeping the previous certificate"))
	})
	bg.Go("session ticket keys", func(ctx context.Context) error {
		return tickets.Run(ctx, onReload("session ticket keys reload failed; keeping the keys in use"))
	})
	bg.Go("admin server", func(context.Context) error { return admin.Serve() })
	if dnsSrv != nil {
		bg.Go("DNS server", func(context.Context) error { return dnsSrv.Serve() })
	}
	if cfg.TLS.ACME.Enabled() { // after the DNS stub serves: the challenges are answered there
		startACME(ctx, cfg, certs, dnsSrv, etcd, logger) // certmagic runs its own goroutines until ctx ends
	}
	bg.Go("SIGHUP", func(ctx context.Context) error {
		return onSignal(ctx, syscall.SIGHUP, func() { reload(ctx, cfg, routeSrc, certs, metrics, logger) })
	})
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()

	logStarted(logger, cfg, srv, dnsSrv, admin, routes.Load().Len(), sockets.Inherited())
	if err := sockets.Ready(); err != nil {
		logger.Error("telling the previous process we serve", zap.Error(err))
	}
	if started != nil {
		started(srv, dnsSrv, admin)
	}
	handedOver := make(chan struct{})
	bg.Go("SIGUSR2", func(ctx context.Context) error { handOverOnUSR2(ctx, sockets, handedOver, logger); return nil })

	result := waitToStop(ctx, handedOver, serveErr, srv, cfg.Ingress.Timeouts.Drain, logger)
	if dnsSrv != nil {
		dnsSrv.Shutdown(context.Background())
	}
	admin.Close()
	bg.Stop()
	logger.Info("ingress stopped")
	return result
}

// waitToStop waits for the end: SIGTERM (ctx), a new process serving, or
// the data path failing. The first two drain the open connections.
func waitToStop(ctx context.Context, handedOver <-chan struct{}, serveErr <-chan error, srv *ingress.Server, timeout time.Duration, logger *zap.Logger) error {
	why := "draining"
	select {
	case <-handedOver:
		why = "draining after the hand-over"
	case <-ctx.Done():
	case err := <-serveErr:
		srv.Shutdown(context.Background())
		return err
	}
	logger.Info(why, zap.Int64("open", srv.Active()), zap.Duration("timeout", timeout))
	dctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil {
		logger.Warn("drain cut connections", zap.Error(err))
	}
	<-serveErr
	return nil
}

// newCertificates builds the certificate store from the files cfg names,
// and the session ticket keys (shared through etcd when the fleet does).
func newCertificates(ctx context.Context, cfg *config.Config, etcd *clientv3.Client, reg *prometheus.Registry, bg *tasks.Group, logger *zap.Logger) (*tlsconfig.Store, *tlsconfig.TicketKeys, error) {
	certs := tlsconfig.NewStore(logger.Named("tls"), tlsconfig.NewMetrics(reg))
	groups, _ := tlsconfig.KeyExchangeGroups(cfg.TLS.KeyExchange) // validated by config.Load
	certs.SetKeyExchange(groups)
	if err := certs.SetFiles(ctx, cfg.TLS.Certificates); err != nil {
		certs.Close()
		return nil, nil, err
	}
	for _, w := range config.CertWarnings(cfg, certs.Leaves()) {
		logger.Warn(w)
	}
	tickets, err := tlsconfig.NewTicketKeys(cfg.TLS.SessionTickets)
	if err != nil {
		certs.Close()
		return nil, nil, err
	}
	if st := cfg.TLS.SessionTickets; st.Shared() {
		shared := &etcdkv.TicketKeys{Client: etcd, Key: strings.TrimPrefix(st.KeysFile, tlsconfig.EtcdPrefix), Rotate: st.Rotate, Keys: tickets}
		lctx, cancel := context.WithTimeout(ctx, cfg.Routes.Etcd.DialTimeout)
		_, err := shared.Load(lctx)
		cancel()
		if err != nil {
			certs.Close()
			return nil, nil, err
		}
		bg.Go("shared session ticket keys", func(ctx context.Context) error {
			shared.Run(ctx, func(err error) { logger.Error("shared session ticket keys", zap.Error(err)) })
			return nil
		})
	}
	return certs, tickets, nil
}

// listen binds the data path, the DNS stub (if configured) and the admin
// server; on error nothing stays bound.
func listen(ctx context.Context, cfg *config.Config, sockets *handover.Sockets, srv *ingress.Server, routes *routing.Holder,
	reg *prometheus.Registry, routeSrc routing.Source, logger *zap.Logger) (*dnsstub.Server, *ingress.Admin, error) {
	if err := srv.Listen(ctx); err != nil {
		return nil, nil, err
	}
	var dnsSrv *dnsstub.Server
	if cfg.DNS.Address != "" {
		dnsSrv = dnsstub.New(dnsstub.Options{
			Config: cfg.DNS, Namespace: cfg.Namespace, Routes: routes, Logger: logger.Named("dns"), Registry: reg,
			Listen: sockets.Listen, ListenPacket: sockets.ListenPacket,
		})
		if err := dnsSrv.Listen(ctx); err != nil {
			srv.Shutdown(context.Background())
			return nil, nil, err
		}
	}
	detail := func() string { return routing.StaleDetail(routeSrc) }
	admin, err := ingress.ListenAdmin(ctx, sockets.Listen, cfg.Admin.Address, ingress.AdminHandler(reg, srv.Ready, detail))
	if err != nil {
		srv.Shutdown(context.Background())
		if dnsSrv != nil {
			dnsSrv.Shutdown(context.Background())
		}
		return nil, nil, err
	}
	return dnsSrv, admin, nil
}

// startACME has certmagic obtain and renew the wildcard certificates of
// every served orchestra, publishing DNS-01 answers through the stub.
func startACME(ctx context.Context, cfg *config.Config, certs *tlsconfig.Store, dnsSrv *dnsstub.Server, etcd *clientv3.Client, logger *zap.Logger) {
	var names []string
	for _, orch := range cfg.Namespace.Orchestras {
		names = append(names, "*."+routing.ZoneName(orch, cfg.Namespace.Domain))
	}
	opts := tlsconfig.ACMEOptions{Names: names, Publisher: dnsSrv.TXT(), Resolver: dnsSrv.DialAddr()}
	if prefix, ok := strings.CutPrefix(cfg.TLS.ACME.Storage, tlsconfig.EtcdPrefix); ok {
		opts.Storage = func(keyType string) certmagic.Storage {
			return &etcdkv.CertStorage{Client: etcd, Prefix: strings.TrimSuffix(prefix, "/") + "/" + keyType + "/"}
		}
	}
	if err := certs.ManageACME(ctx, cfg.TLS.ACME, opts); err != nil {
		logger.Error("ACME certificate management did not start", zap.Error(err))
		return
	}
	logger.Info("ACME certificate management started", zap.Strings("names", names), zap.String("directory", cfg.TLS.ACME.Directory))
}

// logStarted says where everything listens: the bound addresses, which
// tests and operators read (a port 0 in the config is resolved here).
func logStarted(logger *zap.Logger, cfg *config.Config, srv *ingress.Server, dnsSrv *dnsstub.Server, admin *ingress.Admin, instances int, inherited bool) {
	fields := []zap.Field{zap.String("admin", admin.Addr().String()), zap.Int("instances", instances)}
	if dnsSrv != nil {
		fields = append(fields, zap.String("dns", dnsSrv.Addr()))
	}
	for _, l := range cfg.Ingress.Listeners {
		fields = append(fields, zap.Stringer(l.Service, srv.Addr(l.Service)))
	}
	logger.Info("ingress started", fields...)
	if inherited {
		logger.Info("took over the listening sockets from the previous process")
	}
}

// onSignal calls fn each time sig arrives, until ctx ends. Catching the
// signal also keeps its default action (for SIGHUP: exit) away.
func onSignal(ctx context.Context, sig os.Signal, fn func()) error {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
			fn()
		}
	}
}

// handOverOnUSR2 starts a new process of this binary on SIGUSR2 with the
// listening sockets, and closes done once it serves: then this one drains.
// A new process that fails to start or to serve changes nothing.
func handOverOnUSR2(ctx context.Context, sockets *handover.Sockets, done chan<- struct{}, logger *zap.Logger) {
	ctx, handedOver := context.WithCancel(ctx)
	defer handedOver()
	onSignal(ctx, syscall.SIGUSR2, func() {
		logger.Info("SIGUSR2: starting a new process with the listening sockets")
		proc, err := sockets.Start(os.Args, handoverTimeout)
		if err != nil {
			logger.Error("hand-over failed; this process keeps serving", zap.Error(err))
			return
		}
		logger.Info("the new process serves; this one stops accepting", zap.Int("pid", proc.Pid))
		close(done)
		handedOver()
	})
}

// handoverTimeout bounds how long a new process may take to serve.
const handoverTimeout = 30 * time.Second

// reload re-reads the config file, the routes and the certificates
// (SIGHUP). Settings that need new sockets (listeners, admin) or that the
// data path holds (timeouts, limits, backend) are reported as needing a
// restart.
func reload(ctx context.Context, cfg *config.Config, routeSrc routing.Source, certs *tlsconfig.Store, metrics *ingress.Metrics, logger *zap.Logger) {
	logger.Info("SIGHUP: reloading config, routes and certificates")
	next, err := config.Load(cfg.Path)
	if err != nil {
		metrics.Reloaded(err)
		logger.Error("config reload failed; keeping the running config", zap.Error(err))
		return
	}
	if restart := config.NeedRestart(cfg, next); len(restart) > 0 {
		logger.Warn("changed settings take effect at the next restart", zap.Strings("settings", restart))
	}
	err = certs.SetFiles(ctx, next.TLS.Certificates)
	metrics.Reloaded(err)
	if err != nil {
		logger.Error("certificate reload failed; keeping the previous certificate", zap.Error(err))
	}
	_ = routeSrc.Refresh(ctx) // counted and reported through its callback
}
