package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/buildinfo"
	"github.com/neo4j/private-ingress/internal/config"
	"github.com/neo4j/private-ingress/internal/fleet"
	"github.com/neo4j/private-ingress/internal/handover"
	"github.com/neo4j/private-ingress/internal/logging"
	"github.com/neo4j/private-ingress/internal/sdnotify"
	"github.com/neo4j/private-ingress/internal/tasks"
	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// serve runs the ingress for the config at path, logging to stderr, until
// ctx is cancelled (SIGTERM, Ctrl-C), then drains. started, if set, is
// called once the ingress accepts connections, with the bound addresses:
// each service's, "admin" and "dns". With dnsOnly it runs the DNS stub
// alone (`ingress dns`), for deployments that keep it apart. pidfile, if
// set, names the serving process (sdnotify.PIDFile).
func serve(ctx context.Context, path string, dnsOnly bool, pidfile string, stderr io.Writer, started func(addrs map[string]string)) error {
	load := config.Load
	if dnsOnly {
		load = config.LoadDNSOnly
	}
	cfg, err := load(path)
	if err != nil {
		return err
	}
	if dnsOnly && cfg.DNS.Address == "" {
		return fmt.Errorf("%s: dns.address is empty: nothing to serve", path)
	}
	logger, err := logging.New(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer logger.Sync()
	p := &process{cfg: cfg, load: load, dnsOnly: dnsOnly, pidfile: sdnotify.PIDFile(pidfile), logger: logger, bg: tasks.New(logger), reg: prometheus.NewRegistry()}
	defer p.close()
	if err := p.build(ctx); err != nil {
		return err
	}
	p.start(ctx, started)
	return p.wait(ctx)
}

// process is one running ingress: the parts serve wires together, in the
// order they are built.
type process struct {
	cfg     *config.Config
	load    func(path string) (*config.Config, error) // for SIGHUP
	dnsOnly bool                                      // the DNS stub alone: no data path, no certificates
	pidfile sdnotify.PIDFile                          // written once serving; "" for none
	logger  *zap.Logger
	bg      *tasks.Group // background parts, stopped after the drain
	reg     *prometheus.Registry
	metrics *ingress.Metrics
	sockets *handover.Sockets // a previous process's (SIGUSR2), or none
	fleet   *fleet.Fleet      // nil without etcd
	routes  routing.Holder
	source  routing.Source
	certs   *tlsconfig.Store
	tickets *tlsconfig.TicketKeys
	srv     *ingress.Server
	dns     *dnsstub.Server // nil without dns.address
	admin   *ingress.Admin

	serveErr   chan error
	handedOver chan int // the new process's PID, once it serves (SIGUSR2)
}

// build makes and binds every part; the first routes load must succeed.
func (p *process) build(ctx context.Context) (err error) {
	if p.sockets, err = handover.FromEnv(); err != nil {
		return err
	}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Collector())
	if !p.dnsOnly {
		p.metrics = ingress.NewMetrics(p.reg)
	}
	if p.dnsOnly && !p.cfg.DNS.KnownOnly {
		return p.listen(ctx) // answers every name: no routes to follow
	}
	if p.fleet, err = connectFleet(p.cfg, p.logger); err != nil {
		return err
	}
	if p.source, err = newRouteSource(ctx, p.cfg, p.fleet, &p.routes, p.routesLoaded); err != nil {
		return err
	}
	if p.dnsOnly {
		return p.listen(ctx)
	}
	if p.certs, p.tickets, err = tlsconfig.Open(ctx, p.cfg.TLS, p.logger, p.reg); err != nil {
		return err
	}
	for _, w := range config.CertWarnings(p.cfg, p.certs.Leaves()) {
		p.logger.Warn(w)
	}
	if st := p.cfg.TLS.SessionTickets; st.Shared() {
		shared, err := p.fleet.ShareTicketKeys(ctx, st, p.tickets)
		if err != nil {
			return err
		}
		p.bg.Go("shared session ticket keys", func(ctx context.Context) error {
			shared.Run(ctx, func(err error) { p.logger.Error("shared session ticket keys", zap.Error(err)) })
			return nil
		})
	}
	p.srv, err = ingress.New(p.cfg.Ingress, ingress.Options{
		Routes: &p.routes, Certs: p.certs, Logger: p.logger, Metrics: p.metrics,
		SessionTickets: p.tickets, Listen: p.sockets.Listen,
	})
	if err != nil {
		return err
	}
	return p.listen(ctx)
}

// routesLoaded hears every routes reload: later bad files (or etcd values)
// keep the last good table.
func (p *process) routesLoaded(t *routing.Table, err error) {
	p.metrics.Reloaded(err)
	if err != nil {
		p.logger.Error("routes reload failed; keeping the last good table", zap.Error(err))
		return
	}
	p.metrics.SetRoutes(t.Len())
	p.logger.Info("routes loaded", zap.Int("instances", t.Len()))
	if p.srv != nil { // nil at the first load, before any connection
		p.srv.RoutesChanged() // open connections the new table no longer allows are closed after routes.revoke_after
	}
}

// listen binds the data path, the DNS stub (if configured) and the admin
// server; on error nothing stays bound.
func (p *process) listen(ctx context.Context) error {
	ready := func() bool { return ctx.Err() == nil }
	if p.srv != nil {
		if err := p.srv.Listen(ctx); err != nil {
			return err
		}
		ready = p.srv.Ready
	}
	if p.cfg.DNS.Address != "" {
		p.dns = dnsstub.New(dnsstub.Options{
			Config: p.cfg.DNS, Namespace: p.cfg.Namespace, Routes: &p.routes, Logger: p.logger.Named("dns"), Registry: p.reg,
			Listen: p.sockets.Listen, ListenPacket: p.sockets.ListenPacket,
		})
		if err := p.dns.Listen(ctx); err != nil {
			p.dns = nil
			p.shutdown()
			return err
		}
	}
	detail := func() string { return routing.StaleDetail(p.source) }
	handler := ingress.AdminHandler(p.reg, ready, detail)
	if p.cfg.Admin.Pprof {
		handler = ingress.WithProfiling(handler)
	}
	admin, err := ingress.ListenAdmin(ctx, p.sockets.Listen, p.cfg.Admin.Address, handler)
	if err != nil {
		p.shutdown()
		return err
	}
	p.admin = admin
	return nil
}

// start runs every part, says where everything listens (a config's port 0
// resolved: tests and operators read the line), and tells a previous
// process that this one serves.
func (p *process) start(ctx context.Context, started func(map[string]string)) {
	reloaded := func(failed string) func(error) {
		return func(err error) {
			p.metrics.Reloaded(err)
			if err != nil {
				p.logger.Error(failed, zap.Error(err))
			}
		}
	}
	if p.source != nil {
		p.bg.Go("routes watcher", p.source.Run)
	}
	if p.certs != nil {
		p.bg.Go("certificate watcher", func(ctx context.Context) error {
			return p.certs.Watch(ctx, reloaded("certificate reload failed; keeping the previous certificate"))
		})
		p.bg.Go("session ticket keys", func(ctx context.Context) error {
			return p.tickets.Run(ctx, reloaded("session ticket keys reload failed; keeping the keys in use"))
		})
	}
	p.bg.Go("admin server", func(context.Context) error { return p.admin.Serve() })
	if p.dns != nil {
		p.bg.Go("DNS server", func(context.Context) error { return p.dns.Serve() })
	}
	if p.cfg.TLS.ACME.Enabled() { // after the DNS stub serves: the challenges are answered there
		p.startACME(ctx)
	}
	p.bg.Go("SIGHUP", func(ctx context.Context) error {
		return tasks.OnSignal(ctx, syscall.SIGHUP, func() { p.reload(ctx) })
	})
	p.serveErr = make(chan error, 1)
	addrs := map[string]string{}
	if p.srv != nil {
		go func() { p.serveErr <- p.srv.Serve() }()
		addrs = p.srv.Addrs()
	}
	addrs["admin"] = p.admin.Addr().String()
	if p.dns != nil {
		addrs["dns"] = p.dns.Addr()
	}
	fields := []zap.Field{zap.Int("instances", p.routes.Load().Len())}
	for _, name := range slices.Sorted(maps.Keys(addrs)) {
		fields = append(fields, zap.String(name, addrs[name]))
	}
	p.logger.Info(p.name()+" started", fields...)
	if p.sockets.Inherited() {
		p.logger.Info("took over the listening sockets from the previous process")
	}
	if err := p.pidfile.Write(); err != nil { // before a previous process hears that this one serves, and leaves
		p.logger.Error("writing the PID file", zap.Error(err))
	}
	if err := p.sockets.Ready(); err != nil {
		p.logger.Error("telling the previous process we serve", zap.Error(err))
	}
	p.notify(sdnotify.Ready)
	if started != nil {
		started(addrs)
	}
	p.handedOver = make(chan int, 1)
	p.bg.Go("SIGUSR2", func(run context.Context) error {
		p.sockets.OnSIGUSR2(run, ctx, os.Args, handoverTimeout, p.logger, p.handedOver)
		return nil
	})
}

// startACME has certmagic obtain and renew the wildcard certificates of
// every served orchestra, publishing DNS-01 answers as tls.acme.dns_provider
// says; certmagic runs its own goroutines until ctx ends.
func (p *process) startACME(ctx context.Context) {
	names := p.cfg.Namespace.Wildcards()
	opts := tlsconfig.ACMEOptions{Names: names, Storage: p.fleet.CertStorage(p.cfg.TLS.ACME.Storage)}
	if p.dns != nil { // the stub's, for dns_provider stub; with rfc2136 the stub may not run
		opts.Publisher, opts.Resolver = p.dns.TXT(), p.dns.DialAddr()
	}
	if err := p.certs.ManageACME(ctx, p.cfg.TLS.ACME, opts); err != nil {
		p.logger.Error("ACME certificate management did not start", zap.Error(err))
		return
	}
	p.logger.Info("ACME certificate management started", zap.Strings("names", names), zap.String("directory", p.cfg.TLS.ACME.Directory))
}

// wait waits for the end: SIGTERM (ctx), a new process serving, or the
// data path failing. The first two drain the open connections.
func (p *process) wait(ctx context.Context) error {
	why := "draining"
	select {
	case pid := <-p.handedOver:
		why = "draining after the hand-over"
		p.notify(sdnotify.MainPID(pid)) // systemd follows the new process; the service is not stopping
		// The new process answers on the admin address and for DNS, on the
		// very same sockets: this one stops answering there at once, so
		// that every answer comes from the new process, and drains only
		// its own connections.
		p.admin.Close()
		if p.dns != nil {
			p.dns.Shutdown(context.Background())
		}
	case <-ctx.Done():
		p.notify(sdnotify.Stopping)
		p.delayShutdown()
	case err := <-p.serveErr:
		p.notify(sdnotify.Stopping)
		p.shutdown()
		return err
	}
	if p.srv == nil {
		return nil
	}
	timeout := p.cfg.Ingress.Timeouts.Drain
	p.logger.Info(why, zap.Int64("open", p.srv.Active()), zap.Duration("timeout", timeout))
	dctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.srv.Shutdown(dctx); err != nil {
		p.logger.Warn("drain cut connections", zap.Error(err))
	}
	<-p.serveErr
	return nil
}

// delayShutdown keeps serving for timeouts.shutdown_delay after SIGTERM
// with /readyz at 503: a load balancer goes on sending new connections
// until its health checks take this target out, and they must not be
// refused meanwhile.
func (p *process) delayShutdown() {
	delay := p.cfg.Ingress.Timeouts.ShutdownDelay
	if delay <= 0 {
		return
	}
	if p.srv != nil {
		p.srv.Unready()
	}
	p.logger.Info("stopping: /readyz says 503, still serving for timeouts.shutdown_delay", zap.Duration("shutdown_delay", delay))
	time.Sleep(delay) // the delay is the product's, not a synchronisation
}

// name is what the log calls this process.
func (p *process) name() string {
	if p.dnsOnly {
		return "dns stub"
	}
	return "ingress"
}

// shutdown stops the data path and the DNS stub at once.
func (p *process) shutdown() {
	if p.srv != nil {
		p.srv.Shutdown(context.Background())
	}
	if p.dns != nil {
		p.dns.Shutdown(context.Background())
	}
}

// close releases what build made, in reverse: the parts that serve, then
// the background tasks, then what they used.
func (p *process) close() {
	if p.dns != nil {
		p.dns.Shutdown(context.Background())
	}
	if p.admin != nil {
		p.admin.Close()
		defer p.logger.Info(p.name() + " stopped")
	}
	p.bg.Stop()
	if p.certs != nil {
		p.certs.Close()
	}
	if p.fleet != nil {
		p.fleet.Close()
	}
	if err := p.pidfile.Remove(); err != nil { // it names this process no more after a hand-over: then it stays
		p.logger.Warn("removing the PID file", zap.Error(err))
	}
}

// notify tells systemd (NOTIFY_SOCKET) what this process does; nothing without it.
func (p *process) notify(state string) {
	if err := sdnotify.Send(state); err != nil {
		p.logger.Warn("telling systemd", zap.String("state", state), zap.Error(err))
	}
}

// handoverTimeout bounds how long a new process may take to serve.
const handoverTimeout = 30 * time.Second

// reload re-reads the config file, the routes and the certificates
// (SIGHUP). Settings that need new sockets (listeners, admin) or that the
// running parts hold (timeouts, limits, backend) are reported as needing a
// restart.
func (p *process) reload(ctx context.Context) {
	p.logger.Info("SIGHUP: reloading config, routes and certificates")
	next, err := p.load(p.cfg.Path)
	if err != nil {
		p.metrics.Reloaded(err)
		p.logger.Error("config reload failed; keeping the running config", zap.Error(err))
	} else if restart := config.NeedRestart(p.cfg, next); len(restart) > 0 {
		p.logger.Warn("changed settings take effect at the next restart", zap.Strings("settings", restart))
	}
	if err == nil && p.certs != nil {
		err = p.certs.SetFiles(ctx, next.TLS.Certificates)
		p.metrics.Reloaded(err)
		if err != nil {
			p.logger.Error("certificate reload failed; keeping the previous certificate", zap.Error(err))
		}
	}
	if p.source != nil {
		_ = p.source.Refresh(ctx) // counted and reported through its callback
	}
}
