package main

import (
	"fmt"
	"io"

	"github.com/neo4j/private-ingress/internal/config"
	"github.com/neo4j/private-ingress/routing"
)

// check prints every problem of a config and its routes and certificates as
// "file:line: message" and returns 1 if there is any error.
func check(path string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	warnings, err := config.Check(cfg)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "%s: warning: %s\n", path, w)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if cfg.Routes.Etcd != nil {
		fmt.Fprintf(stdout, "%s: ok: %d listeners, routes in etcd under %s, %d certificates\n",
			path, len(cfg.Ingress.Listeners), cfg.Routes.Etcd.Prefix, len(cfg.TLS.Certificates))
		return 0
	}
	table, err := routing.LoadFile(cfg.Routes.File, cfg.Namespace, nil)
	if err != nil { // changed since Check read it
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok: %d listeners, %d instances, %d certificates\n",
		path, len(cfg.Ingress.Listeners), table.Len(), len(cfg.TLS.Certificates))
	return 0
}
