package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/internal/config"
	"github.com/neo4j/private-ingress/internal/fleet"
	"github.com/neo4j/private-ingress/routing"
)

// newRouteSource makes the routing source cfg names, the routes file or
// etcd (through the process's fleet), and loads its first table, which
// must succeed.
func newRouteSource(ctx context.Context, cfg *config.Config, f *fleet.Fleet, holder *routing.Holder, onReload func(*routing.Table, error)) (routing.Source, error) {
	var src routing.Source = &routing.Watcher{Path: cfg.Routes.File, Namespace: cfg.Namespace, Holder: holder, OnReload: onReload}
	if f != nil {
		src = f.RouteSource(cfg.Namespace, holder, onReload)
	}
	return src, src.Refresh(ctx)
}

// connectFleet returns the process's link to etcd, or nil when the config
// names no etcd.
func connectFleet(cfg *config.Config, logger *zap.Logger) (*fleet.Fleet, error) {
	if cfg.Routes.Etcd == nil {
		return nil, nil
	}
	return fleet.Connect(cfg.Routes.Etcd, logger)
}

// routesCommand is `ingress routes put|delete|list`: the instances in
// etcd, validated with the rules of routes.yaml before anything is written.
func routesCommand(ctx context.Context, path string, args []string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if cfg.Routes.Etcd == nil {
		return fmt.Errorf("%s: routes.etcd is not set: the routes are in %s, edit that file", path, cfg.Routes.File)
	}
	f, err := fleet.Connect(cfg.Routes.Etcd, zap.NewNop())
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return f.Routes().Command(ctx, cfg.Namespace, args, stdout)
}
