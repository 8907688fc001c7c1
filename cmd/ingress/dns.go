package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/config"
	"github.com/neo4j/private-ingress/internal/logging"
	"github.com/neo4j/private-ingress/internal/tasks"
	"github.com/neo4j/private-ingress/routing"
)

// runDNS runs the DNS stub alone, for deployments that keep it apart from
// the ingress. With known_only it follows the routes as serve does.
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
	var etcd *clientv3.Client
	if cfg.DNS.KnownOnly {
		if etcd, err = dialFleet(cfg, logger); err != nil {
			return err
		}
		if etcd != nil {
			defer etcd.Close()
		}
	}
	bg := tasks.New(logger) // stopped before etcd closes
	defer bg.Stop()
	var routes routing.Holder
	var routeSrc routing.Source
	detail := func() string { return "" }
	if cfg.DNS.KnownOnly {
		routeSrc, err = newRouteSource(ctx, cfg, etcd, &routes, func(_ *routing.Table, err error) {
			if err != nil {
				logger.Error("routes reload failed; keeping the last good table", zap.Error(err))
			}
		})
		if err != nil {
			return err
		}
		bg.Go("routes watcher", routeSrc.Run)
		detail = func() string { return routing.StaleDetail(routeSrc) }
	}
	// SIGHUP would otherwise end the process: the operator's reload signal
	// for serve must not kill the stub.
	bg.Go("SIGHUP", func(ctx context.Context) error {
		return onSignal(ctx, syscall.SIGHUP, func() {
			logger.Info("SIGHUP: reloading routes")
			if next, err := config.LoadDNSOnly(path); err != nil {
				logger.Error("config reload failed; keeping the running config", zap.Error(err))
			} else if restart := config.NeedRestart(cfg, next); len(restart) > 0 {
				logger.Warn("changed settings take effect at the next restart", zap.Strings("settings", restart))
			}
			if routeSrc != nil {
				_ = routeSrc.Refresh(ctx) // reported through its callback
			}
		})
	})
	reg := prometheus.NewRegistry()
	srv := dnsstub.New(dnsstub.Options{Config: cfg.DNS, Namespace: cfg.Namespace, Routes: &routes, Logger: logger, Registry: reg})
	if err := srv.Listen(ctx); err != nil {
		return err
	}
	admin, err := ingress.ListenAdmin(ctx, nil, cfg.Admin.Address, ingress.AdminHandler(reg, func() bool { return ctx.Err() == nil }, detail))
	if err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	bg.Go("admin server", func(context.Context) error { return admin.Serve() })
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
