package main

import (
	"context"
	"fmt"
	"io"

	"github.com/neo4j/private-ingress/internal/demo"
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
	return serve(ctx, path, false, "", o.Stderr, func(addrs map[string]string) {
		addrs["ca"] = certs.CA
		instances.Advertise(addrs["bolt"])
		demo.PrintInstructions(o.Stdout, o.Dir, addrs)
		if o.Ready != nil {
			o.Ready(addrs)
		}
	})
}
