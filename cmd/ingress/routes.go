package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/internal/config"
	"github.com/neo4j/private-ingress/internal/etcdkv"
	"github.com/neo4j/private-ingress/routing"
)

// newRouteSource makes the routing source cfg names, the routes file or
// etcd (through the process's one client), and loads its first table,
// which must succeed.
func newRouteSource(ctx context.Context, cfg *config.Config, etcd *clientv3.Client, holder *routing.Holder, onReload func(*routing.Table, error)) (routing.Source, error) {
	var src routing.Source = &routing.Watcher{Path: cfg.Routes.File, Namespace: cfg.Namespace, Holder: holder, OnReload: onReload}
	if e := cfg.Routes.Etcd; e != nil {
		src = &routing.EtcdSource{
			Store: etcdkv.Store{Client: etcd}, Prefix: e.Prefix, Namespace: cfg.Namespace, Holder: holder, Timeout: e.DialTimeout,
			OnApply: func(t *routing.Table, _ int, err error) { onReload(t, err) },
		}
	}
	return src, src.Refresh(ctx)
}

// dialFleet returns the process's etcd client, or nil when the config
// names no etcd.
func dialFleet(cfg *config.Config, logger *zap.Logger) (*clientv3.Client, error) {
	if cfg.Routes.Etcd == nil {
		return nil, nil
	}
	return etcdkv.Dial(cfg.Routes.Etcd, logger)
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
	if len(args) == 0 {
		return errors.New("usage: ingress routes put FILE... | delete DBID [ORCH] | list")
	}
	cli, err := etcdkv.Dial(cfg.Routes.Etcd, zap.NewNop())
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	routes := etcdkv.Routes{Client: cli, Prefix: cfg.Routes.Etcd.Prefix}
	switch verb, rest := args[0], args[1:]; verb {
	case "put":
		if len(rest) == 0 {
			return errors.New("ingress routes put: name one or more instance files (YAML or JSON, one routes.yaml entry each)")
		}
		entries, err := routing.ReadEntries(rest, cfg.Namespace)
		if err != nil {
			return err
		}
		keys, err := routes.Put(ctx, entries)
		if err != nil {
			return err
		}
		for _, key := range keys {
			fmt.Fprintf(stdout, "put %s\n", key)
		}
	case "delete":
		if len(rest) < 1 || len(rest) > 2 {
			return errors.New("usage: ingress routes delete DBID [ORCH]")
		}
		orch := cfg.Namespace.Orchestras[0]
		if len(rest) == 2 {
			orch = rest[1]
		}
		key, err := routes.Delete(ctx, strings.ToLower(orch), strings.ToLower(rest[0]))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", key)
	case "list":
		kvs, err := routes.List(ctx)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			fmt.Fprintf(stdout, "%s\t%s\n", kv.Key, kv.Value)
		}
	default:
		return fmt.Errorf("ingress routes: unknown verb %q (put, delete, list)", verb)
	}
	return nil
}
