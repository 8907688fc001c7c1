package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
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
// server together, handles SIGHUP, and drains when ctx ends.
func runIngress(ctx context.Context, cfg *config.Config, logger *zap.Logger, started startedFunc) error {
	// Sockets a previous process handed over (SIGUSR2), or none.
	sockets, err := handover.FromEnv()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := ingress.NewMetrics(reg)

	// Routes: the first load must succeed; later bad files (or etcd
	// values) keep the last good table.
	var routes routing.Holder
	routeSrc, err := newRouteSource(ctx, cfg, &routes, logger, func(t *routing.Table, err error) {
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
	defer routeSrc.close()

	certs := tlsconfig.NewStore(logger.Named("tls"), tlsconfig.NewMetrics(reg))
	defer certs.Close()
	groups, _ := tlsconfig.KeyExchangeGroups(cfg.TLS.KeyExchange) // validated by config.Load
	certs.SetKeyExchange(groups)
	if err := certs.SetFiles(ctx, cfg.TLS.Certificates); err != nil {
		return err
	}
	for _, w := range config.CertWarnings(cfg, certs.Leaves()) {
		logger.Warn(w)
	}
	backendTLS, err := backendTLSConfig(cfg.Ingress.Backend.TLS)
	if err != nil {
		return err
	}

	tickets, err := tlsconfig.NewTicketKeys(cfg.TLS.SessionTickets)
	if err != nil {
		return err
	}
	// A fleet's shared pieces in etcd: the ticket keys, the certificates.
	var fleetEtcd *clientv3.Client
	if cfg.Routes.Etcd != nil && (cfg.TLS.SessionTickets.Shared() || strings.HasPrefix(cfg.TLS.ACME.Storage, tlsconfig.EtcdPrefix)) {
		if fleetEtcd, err = newEtcdClient(cfg.Routes.Etcd, logger); err != nil {
			return err
		}
		defer fleetEtcd.Close()
	}
	var sharedTickets *etcdkv.TicketKeys
	if cfg.TLS.SessionTickets.Shared() {
		sharedTickets = &etcdkv.TicketKeys{Client: fleetEtcd, Key: strings.TrimPrefix(cfg.TLS.SessionTickets.KeysFile, tlsconfig.EtcdPrefix),
			Rotate: cfg.TLS.SessionTickets.Rotate, Keys: tickets}
		lctx, cancel := context.WithTimeout(ctx, cfg.Routes.Etcd.DialTimeout)
		_, err := sharedTickets.Load(lctx)
		cancel()
		if err != nil {
			return err
		}
	}

	srv, err := ingress.New(cfg.Ingress, ingress.Options{
		Routes: &routes, Certs: certs, Logger: logger, Metrics: metrics, BackendTLS: backendTLS,
		SessionTickets: tickets, Listen: sockets.Listen,
	})
	if err != nil {
		return err
	}
	if err := srv.Listen(ctx); err != nil {
		return err
	}
	var dnsSrv *dnsstub.Server
	if cfg.DNS.Address != "" {
		dnsSrv = dnsstub.New(dnsstub.Options{
			Config: cfg.DNS, Namespace: cfg.Namespace, Routes: &routes, Logger: logger.Named("dns"), Registry: reg,
			Listen: sockets.Listen, ListenPacket: sockets.ListenPacket,
		})
		if err := dnsSrv.Listen(ctx); err != nil {
			srv.Shutdown(context.Background())
			return err
		}
	}
	admin, err := ingress.ListenAdmin(ctx, sockets.Listen, cfg.Admin.Address, ingress.AdminHandler(reg, srv.Ready, routeSrc.readyDetail))
	if err != nil {
		srv.Shutdown(context.Background())
		if dnsSrv != nil {
			dnsSrv.Shutdown(context.Background())
		}
		return err
	}

	bg, cancelBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := routeSrc.run(bg); err != nil {
			logger.Error("routes watcher stopped", zap.Error(err))
		}
	})
	wg.Go(func() {
		err := certs.Watch(bg, func(err error) {
			metrics.Reloaded(err)
			if err != nil {
				logger.Error("certificate reload failed; keeping the previous certificate", zap.Error(err))
			}
		})
		if err != nil {
			logger.Error("certificate watcher stopped", zap.Error(err))
		}
	})
	wg.Go(func() {
		if err := admin.Serve(); err != nil {
			logger.Error("admin server stopped", zap.Error(err))
		}
	})
	if dnsSrv != nil {
		wg.Go(func() {
			if err := dnsSrv.Serve(); err != nil {
				logger.Error("DNS server stopped", zap.Error(err))
			}
		})
	}
	wg.Go(func() {
		err := tickets.Run(bg, func(err error) {
			metrics.Reloaded(err)
			if err != nil {
				logger.Error("session ticket keys reload failed; keeping the keys in use", zap.Error(err))
			}
		})
		if err != nil {
			logger.Error("session ticket keys stopped", zap.Error(err))
		}
	})
	// ACME after the DNS stub serves: the challenges are answered there.
	if cfg.TLS.ACME.Enabled() {
		var names []string
		for _, orch := range cfg.Namespace.Orchestras {
			names = append(names, "*."+routing.ZoneName(orch, cfg.Namespace.Domain))
		}
		opts := tlsconfig.ACMEOptions{Names: names, Publisher: dnsSrv.TXT(), Resolver: dialable(dnsSrv.Addr())}
		if prefix, ok := strings.CutPrefix(cfg.TLS.ACME.Storage, tlsconfig.EtcdPrefix); ok {
			opts.Storage = func(keyType string) certmagic.Storage {
				return &etcdkv.CertStorage{Client: fleetEtcd, Prefix: strings.TrimSuffix(prefix, "/") + "/" + keyType + "/"}
			}
		}
		err := certs.ManageACME(bg, cfg.TLS.ACME, opts)
		if err != nil {
			logger.Error("ACME certificate management did not start", zap.Error(err))
		} else {
			logger.Info("ACME certificate management started", zap.Strings("names", names), zap.String("directory", cfg.TLS.ACME.Directory))
		}
	}
	if sharedTickets != nil {
		wg.Go(func() {
			sharedTickets.Run(bg, func(err error) { logger.Error("shared session ticket keys", zap.Error(err)) })
		})
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()
	wg.Go(func() { reloadOnHUP(bg, cfg, routeSrc, certs, metrics, logger) })

	fields := []zap.Field{zap.String("admin", admin.Addr().String()), zap.Int("instances", routes.Load().Len())}
	if dnsSrv != nil {
		fields = append(fields, zap.String("dns", dnsSrv.Addr()))
	}
	for _, l := range cfg.Ingress.Listeners {
		fields = append(fields, zap.Stringer(l.Service, srv.Addr(l.Service)))
	}
	logger.Info("ingress started", fields...)
	if sockets.Inherited() {
		logger.Info("took over the listening sockets from the previous process")
	}
	if err := sockets.Ready(); err != nil {
		logger.Error("telling the previous process we serve", zap.Error(err))
	}
	if started != nil {
		started(srv, dnsSrv, admin)
	}
	handedOver := make(chan struct{})
	wg.Go(func() { handOverOnUSR2(bg, sockets, handedOver, logger) })

	var result error
	select {
	case <-handedOver:
		logger.Info("draining after the hand-over", zap.Int64("open", srv.Active()), zap.Duration("timeout", cfg.Ingress.Timeouts.Drain))
		dctx, cancel := context.WithTimeout(context.Background(), cfg.Ingress.Timeouts.Drain)
		if err := srv.Shutdown(dctx); err != nil {
			logger.Warn("drain cut connections", zap.Error(err))
		}
		cancel()
		<-serveErr
	case <-ctx.Done():
		logger.Info("draining", zap.Int64("open", srv.Active()), zap.Duration("timeout", cfg.Ingress.Timeouts.Drain))
		dctx, cancel := context.WithTimeout(context.Background(), cfg.Ingress.Timeouts.Drain)
		if err := srv.Shutdown(dctx); err != nil {
			logger.Warn("drain cut connections", zap.Error(err))
		}
		cancel()
		<-serveErr
	case result = <-serveErr:
		srv.Shutdown(context.Background())
	}
	if dnsSrv != nil {
		dnsSrv.Shutdown(context.Background())
	}
	admin.Close()
	cancelBG()
	wg.Wait()
	logger.Info("ingress stopped")
	return result
}

// handOverOnUSR2 starts a new process of this binary on SIGUSR2 with the
// listening sockets, and closes done once it serves: then this one drains.
// A new process that fails to start or to serve changes nothing.
func handOverOnUSR2(ctx context.Context, sockets *handover.Sockets, done chan<- struct{}, logger *zap.Logger) {
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	for {
		select {
		case <-ctx.Done():
			return
		case <-usr2:
		}
		logger.Info("SIGUSR2: starting a new process with the listening sockets")
		proc, err := sockets.Start(os.Args, handoverTimeout)
		if err != nil {
			logger.Error("hand-over failed; this process keeps serving", zap.Error(err))
			continue
		}
		logger.Info("the new process serves; this one stops accepting", zap.Int("pid", proc.Pid))
		close(done)
		return
	}
}

// handoverTimeout bounds how long a new process may take to serve.
const handoverTimeout = 30 * time.Second

// reloadOnHUP re-reads the config file, the routes and the certificates on
// SIGHUP. Settings that need new sockets (listeners, admin) or that the data
// path holds (timeouts, limits, backend) are reported as needing a restart.
func reloadOnHUP(ctx context.Context, cfg *config.Config, routeSrc *routeSource, certs *tlsconfig.Store, metrics *ingress.Metrics, logger *zap.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		logger.Info("SIGHUP: reloading config, routes and certificates")
		next, err := config.Load(cfg.Path)
		if err != nil {
			metrics.Reloaded(err)
			logger.Error("config reload failed; keeping the running config", zap.Error(err))
			continue
		}
		if restart := config.NeedRestart(cfg, next); len(restart) > 0 {
			logger.Warn("changed settings take effect at the next restart", zap.Strings("settings", restart))
		}
		err = certs.SetFiles(ctx, next.TLS.Certificates)
		metrics.Reloaded(err)
		if err != nil {
			logger.Error("certificate reload failed; keeping the previous certificate", zap.Error(err))
		}
		_ = routeSrc.reload(ctx) // counted and reported through its callback
	}
}

// dialable turns a bound address into one to dial: an unspecified host
// (":53", "[::]:53") becomes loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func backendTLSConfig(c ingress.BackendTLSConfig) (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	tc := &tls.Config{ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("backend.tls.ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("backend.tls.ca: no PEM certificate in %s", c.CA)
		}
	}
	return tc, nil
}
