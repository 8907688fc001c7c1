package main

import (
	"context"
	"fmt"
	"io"
	"net"

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
		printDemo(o.Stdout, o.Dir, certs.CA, srv, dns, admin)
		if o.Ready != nil {
			o.Ready(addrs)
		}
	})
}

func printDemo(w io.Writer, dir, ca string, srv *ingress.Server, dns *dnsstub.Server, admin *ingress.Admin) {
	port := func(service string) string {
		_, p, _ := net.SplitHostPort(srv.Addr(service).String())
		return p
	}
	host, other := demo.FQDN(demo.DBIDs()[0]), demo.FQDN(demo.DBIDs()[1])
	dnsHost, dnsPort, _ := net.SplitHostPort(dns.Addr())
	fmt.Fprintf(w, `
The ingress demo is running (Ctrl-C stops it). Config, routes and a dev CA are in %[1]s/.
Databases: %[2]s and %[3]s (fake instances on loopback).

  # The DNS stub answers every name in the zone with the endpoint address:
  dig @%[10]s -p %[11]s %[2]s +short

  # HTTPS through the ingress (--resolve stands in for DNS):
  curl --cacert %[4]s --resolve %[2]s:%[5]s:127.0.0.1 https://%[2]s:%[5]s/
  curl --cacert %[4]s --resolve %[3]s:%[6]s:127.0.0.1 https://%[3]s:%[6]s/

  # A bare TCP connectivity check on each service:
  nc -vz 127.0.0.1 %[5]s; nc -vz 127.0.0.1 %[7]s; nc -vz 127.0.0.1 %[6]s; nc -vz 127.0.0.1 %[8]s

  # The TLS handshake on the bolt port: protocol, suite, certificate check:
  openssl s_client -brief -connect 127.0.0.1:%[7]s -servername %[2]s -CAfile %[4]s </dev/null

  # Refusals are explained in the service's protocol (refusals: explain), and
  # no backend is dialled: an unknown database (404), and a database that only
  # its private endpoint may reach (403):
  curl --cacert %[4]s --resolve nosuchdb.production-orch-0000.neo4j.io:%[5]s:127.0.0.1 https://nosuchdb.production-orch-0000.neo4j.io:%[5]s/
  curl --cacert %[4]s --resolve %[12]s:%[5]s:127.0.0.1 https://%[12]s:%[5]s/

  # A Neo4j driver (neo4j+s://, it follows the routing table back through the
  # ingress): trust the dev CA and make the names resolve to 127.0.0.1, through
  # a resolver pointed at the stub above, or /etc/hosts:
  #   echo "127.0.0.1 %[2]s %[3]s" | sudo tee -a /etc/hosts
  #   Go:         SSL_CERT_FILE=%[4]s, neo4j.NewDriverWithContext("neo4j+s://%[2]s:%[7]s", ...)
  #   JavaScript: NODE_EXTRA_CA_CERTS=%[4]s, neo4j.driver("neo4j+s://%[2]s:%[7]s", ...)
  # The fake instances answer RETURN with literals, $parameters and instance(),
  # which names the instance that answered: RETURN instance() AS instance.
  # Arrow Flight (gRPC over TLS, ALPN h2): 127.0.0.1:%[8]s, server name %[2]s.

  # Metrics, health and readiness:
  curl -s http://%[9]s/metrics | grep ^ingress_connections_total
  curl -s http://%[9]s/readyz

`, dir, host, other, ca, port("https"), port("http"), port("bolt"), port("arrow"), admin.Addr(), dnsHost, dnsPort, demo.FQDN(demo.PrivateDBID))
}
