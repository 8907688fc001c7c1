package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/config"
	"github.com/neo4j/private-ingress/internal/logging"
	"github.com/neo4j/private-ingress/routing"
)

// runDNS runs the DNS stub alone, for deployments that keep it apart from
// the ingress. With known_only it watches the routes file as serve does.
func runDNS(ctx context.Context, path string, stderr io.Writer) error {
	cfg, err := config.LoadDNSOnly(path)
	if err != nil {
		return err
	}
	if cfg.DNS.Address == "" {
		return fmt.Errorf("%s: dns.address is empty: nothing to serve", path)
	}
	logger, err := logging.New(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer logger.Sync()
	reg := prometheus.NewRegistry()
	var routes routing.Holder
	bg, cancel := context.WithCancel(ctx)
	defer cancel()
	// SIGHUP would otherwise end the process: the operator's reload signal
	// for serve must not kill the stub.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var routeSrc *routeSource
	if cfg.DNS.KnownOnly {
		var err error
		routeSrc, err = newRouteSource(ctx, cfg, &routes, logger, func(_ *routing.Table, err error) {
			if err != nil {
				logger.Error("routes reload failed; keeping the last good table", zap.Error(err))
			}
		})
		if err != nil {
			return err
		}
		defer routeSrc.close()
		go routeSrc.run(bg)
	}
	go func() {
		for {
			select {
			case <-bg.Done():
				return
			case <-hup:
			}
			logger.Info("SIGHUP: reloading routes")
			if next, err := config.LoadDNSOnly(path); err != nil {
				logger.Error("config reload failed; keeping the running config", zap.Error(err))
			} else if restart := config.NeedRestart(cfg, next); len(restart) > 0 {
				logger.Warn("changed settings take effect at the next restart", zap.Strings("settings", restart))
			}
			if routeSrc != nil {
				_ = routeSrc.reload(bg) // reported through its callback
			}
		}
	}()
	srv := dnsstub.New(dnsstub.Options{Config: cfg.DNS, Namespace: cfg.Namespace, Routes: &routes, Logger: logger, Registry: reg})
	if err := srv.Listen(ctx); err != nil {
		return err
	}
	var detail func() string
	if routeSrc != nil {
		detail = routeSrc.readyDetail
	}
	admin, err := ingress.ListenAdmin(ctx, nil, cfg.Admin.Address, ingress.AdminHandler(reg, func() bool { return ctx.Err() == nil }, detail))
	if err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	go admin.Serve()
	defer admin.Close()
	logger.Info("dns stub started", zap.String("dns", srv.Addr()), zap.String("admin", admin.Addr().String()))
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	select {
	case <-ctx.Done():
		srv.Shutdown(context.Background())
		<-done
		return nil
	case err := <-done:
		return errors.Join(err, srv.Shutdown(context.Background()))
	}
}
