package demo

import (
	"fmt"
	"io"
	"net"
)

// PrintInstructions prints commands that work when pasted against the
// running demo: addrs holds the bound address of each service, "dns" and
// "admin", and "ca", the dev CA file.
func PrintInstructions(w io.Writer, dir string, addrs map[string]string) {
	port := func(service string) string {
		_, p, _ := net.SplitHostPort(addrs[service])
		return p
	}
	host, other := FQDN(DBIDs()[0]), FQDN(DBIDs()[1])
	dnsHost, dnsPort, _ := net.SplitHostPort(addrs["dns"])
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

  # A paused database, and one whose instance does not answer (both 503; Bolt
  # drivers retry the second, not the first):
  curl --cacert %[4]s --resolve %[13]s:%[5]s:127.0.0.1 https://%[13]s:%[5]s/
  curl --cacert %[4]s --resolve %[14]s:%[5]s:127.0.0.1 https://%[14]s:%[5]s/

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

`, dir, host, other, addrs["ca"], port("https"), port("http"), port("bolt"), port("arrow"), addrs["admin"], dnsHost, dnsPort, FQDN(PrivateDBID),
		FQDN(PausedDBID), FQDN(DownDBID))
}
