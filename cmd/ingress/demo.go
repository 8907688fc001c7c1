package main

import (
	"context"
	"fmt"
	"io"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/config"
	"github.com/neo4j/private-ingress/internal/demo"
	"github.com/neo4j/private-ingress/internal/logging"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// demoOptions say where the demo writes and listens.
type demoOptions struct {
	Dir            string
	Ports          demo.Ports
	Stdout, Stderr io.Writer
	// Ready, if set, hears the bound addresses once everything listens:
	// the services' names, "dns", "admin", and "ca" (the CA file).
	Ready func(addrs map[string]string)
}

// runDemo runs the ingress on an embedded default: a dev CA and wildcard
// RSA leaf in Dir, fake instances on loopback, and the config files that
// route to them, then prints commands that work when pasted.
func runDemo(ctx context.Context, o demoOptions) error {
	certs, err := tlsconfig.WriteDevCerts(o.Dir, []string{"*." + "production-orch-" + demo.Orch + ".neo4j.io"})
	if err != nil {
		return fmt.Errorf("demo certificates: %w", err)
	}
	instances, err := demo.Start(demo.DBIDs())
	if err != nil {
		return err
	}
	defer instances.Close()
	path, err := demo.WriteConfig(o.Dir, o.Ports, instances, certs.Cert, certs.Key)
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	logger, err := logging.New(cfg.Log, o.Stderr)
	if err != nil {
		return err
	}
	defer logger.Sync()
	return runIngress(ctx, cfg, logger, func(srv *ingress.Server, dns *dnsstub.Server, admin *ingress.Admin) {
		addrs := map[string]string{"dns": dns.Addr(), "admin": admin.Addr().String(), "ca": certs.CA}
		for _, l := range cfg.Ingress.Listeners {
			addrs[l.Service] = srv.Addr(l.Service).String()
		}
		instances.Advertise(addrs["bolt"])
		demo.PrintInstructions(o.Stdout, o.Dir, addrs)
		if o.Ready != nil {
			o.Ready(addrs)
		}
	})
}
