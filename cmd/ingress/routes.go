package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/internal/config"
	"github.com/neo4j/private-ingress/internal/etcdkv"
	"github.com/neo4j/private-ingress/routing"
)

// routeSource is where the routing table comes from: the routes file, or
// etcd. Both publish into one Holder and report through onReload.
type routeSource struct {
	run    func(ctx context.Context) error
	reload func(ctx context.Context) error
	// stale says, for etcd, since when it has not answered; nil for a file.
	stale func() (time.Time, bool)
	close func()
}

// newRouteSource loads the first table (which must succeed) and returns
// the source to run.
func newRouteSource(ctx context.Context, cfg *config.Config, holder *routing.Holder, logger *zap.Logger, onReload func(*routing.Table, error)) (*routeSource, error) {
	if cfg.Routes.Etcd == nil {
		w := &routing.Watcher{Path: cfg.Routes.File, Namespace: cfg.Namespace, Holder: holder, OnReload: onReload}
		if err := w.Reload(true); err != nil {
			return nil, err
		}
		return &routeSource{
			run:    w.Run,
			reload: func(context.Context) error { return w.Reload(true) },
			close:  func() {},
		}, nil
	}
	cli, err := newEtcdClient(cfg.Routes.Etcd, logger)
	if err != nil {
		return nil, err
	}
	src := &routing.EtcdSource{
		Store: etcdkv.Store{Client: cli}, Prefix: cfg.Routes.Etcd.Prefix, Namespace: cfg.Namespace, Holder: holder,
		OnApply: func(t *routing.Table, _ int, err error) { onReload(t, err) },
	}
	lctx, cancel := context.WithTimeout(ctx, cfg.Routes.Etcd.DialTimeout)
	defer cancel()
	if err := src.Load(lctx); err != nil {
		cli.Close()
		return nil, err
	}
	reload := func(ctx context.Context) error {
		// A SIGHUP while etcd is away must not hang on it.
		ctx, cancel := context.WithTimeout(ctx, cfg.Routes.Etcd.DialTimeout)
		defer cancel()
		return src.Load(ctx)
	}
	return &routeSource{run: src.Run, reload: reload, stale: src.Stale, close: func() { cli.Close() }}, nil
}

// readyDetail is what /readyz adds to "ready": the routes' staleness.
func (r *routeSource) readyDetail() string {
	if r.stale == nil {
		return ""
	}
	if since, stale := r.stale(); stale {
		return fmt.Sprintf("routes stale: etcd has not answered since %s (%s); serving the last table",
			since.UTC().Format(time.RFC3339), time.Since(since).Round(time.Second))
	}
	return ""
}

func newEtcdClient(c *config.EtcdConfig, logger *zap.Logger) (*clientv3.Client, error) {
	cc := clientv3.Config{Endpoints: c.Endpoints, DialTimeout: c.DialTimeout, Logger: logger.Named("etcd").WithOptions(zap.IncreaseLevel(zap.ErrorLevel))}
	if c.TLS.CA != "" || c.TLS.Cert != "" || slices.ContainsFunc(c.Endpoints, func(e string) bool { return strings.HasPrefix(e, "https:") }) {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLS.CA != "" {
			pem, err := os.ReadFile(c.TLS.CA)
			if err != nil {
				return nil, fmt.Errorf("routes.etcd.tls.ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("routes.etcd.tls.ca: no PEM certificate in %s", c.TLS.CA)
			}
		}
		if c.TLS.Cert != "" {
			cert, err := tls.LoadX509KeyPair(c.TLS.Cert, c.TLS.Key)
			if err != nil {
				return nil, fmt.Errorf("routes.etcd.tls: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		cc.TLS = tc
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", c.Endpoints, err)
	}
	return cli, nil
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
	cli, err := newEtcdClient(cfg.Routes.Etcd, zap.NewNop())
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	prefix := cfg.Routes.Etcd.Prefix
	switch verb, rest := args[0], args[1:]; verb {
	case "put":
		if len(rest) == 0 {
			return errors.New("ingress routes put: name one or more instance files (YAML or JSON, one routes.yaml entry each)")
		}
		// Every file first: nothing is written if one of them is wrong.
		var entries []routing.Entry
		var errs []error
		for _, file := range rest {
			data, err := os.ReadFile(file)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			e, err := routing.ParseEntry(file, data, cfg.Namespace)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			entries = append(entries, e)
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		for _, e := range entries {
			key := routing.Key(prefix, e.Orch, e.DBID)
			if _, err := cli.Put(ctx, key, string(e.JSON())); err != nil {
				return fmt.Errorf("put %s: %w", key, err)
			}
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
		key := routing.Key(prefix, strings.ToLower(orch), strings.ToLower(rest[0]))
		resp, err := cli.Delete(ctx, key)
		if err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		if resp.Deleted == 0 {
			return fmt.Errorf("delete %s: no such instance", key)
		}
		fmt.Fprintf(stdout, "deleted %s\n", key)
	case "list":
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, kv := range resp.Kvs {
			fmt.Fprintf(stdout, "%s\t%s\n", kv.Key, kv.Value)
		}
	default:
		return fmt.Errorf("ingress routes: unknown verb %q (put, delete, list)", verb)
	}
	return nil
}
