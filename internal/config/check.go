package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/neo4j/private-ingress/internal/yamlutil"
	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// CheckFile is `ingress check`: it loads the config at path and everything
// it names, as serve would, and returns a one-line summary of what it
// found, or the errors (file:line: what is wrong). Warnings come either way.
func CheckFile(path string) (summary string, warnings []string, err error) {
	cfg, err := Load(path)
	if err != nil {
		return "", nil, err
	}
	warnings, err = Check(cfg)
	if err != nil {
		return "", warnings, err
	}
	if cfg.Routes.Etcd != nil {
		return fmt.Sprintf("%s: ok: %d listeners, routes in etcd under %s, %d certificates",
			path, len(cfg.Ingress.Listeners), cfg.Routes.Etcd.Prefix, len(cfg.TLS.Certificates)), warnings, nil
	}
	table, err := routing.LoadFile(cfg.Routes.File, cfg.Namespace, nil)
	if err != nil { // changed since Check read it
		return "", warnings, err
	}
	return fmt.Sprintf("%s: ok: %d listeners, %d instances, %d certificates",
		path, len(cfg.Ingress.Listeners), table.Len(), len(cfg.TLS.Certificates)), warnings, nil
}

// Check goes beyond Parse: it loads the routes file, the certificates and
// the backend leg's roots and client certificate the config names, as
// serve would. Errors make serve fail; warnings are worth
// an operator's attention but do not stop it.
func Check(cfg *Config) (warnings []string, err error) {
	var errs []string
	// Routes in etcd are validated one by one by `ingress routes put`.
	if cfg.Routes.Etcd == nil {
		if _, err := routing.LoadFile(cfg.Routes.File, cfg.Namespace, nil); err != nil {
			var positioned yamlutil.Errors
			if errors.As(err, &positioned) {
				errs = append(errs, err.Error())
			} else {
				errs = append(errs, fmt.Sprintf("%s: routes.file: %v", cfg.Path, err))
			}
		}
	}
	var leaves []tlsconfig.Leaf
	for _, f := range cfg.TLS.Certificates {
		leaf, err := tlsconfig.InspectFiles(f)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: certificate %s: %v", cfg.Path, f.Cert, err))
			continue
		}
		leaves = append(leaves, leaf)
	}
	if b := cfg.Ingress.Backend.TLS; b.Enabled {
		files := tlsconfig.ClientFiles{CA: b.CA, Cert: b.ClientCert, Key: b.ClientKey}
		if _, err := tlsconfig.ClientConfig(files); err != nil {
			errs = append(errs, fmt.Sprintf("%s: backend.tls: %v", cfg.Path, err))
		}
	}
	warnings = CertWarnings(cfg, leaves)
	warnings = append(warnings, DNSWarnings(cfg)...)
	if len(errs) > 0 {
		return warnings, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return warnings, nil
}

// CertWarnings lists what is wrong but not fatal with the loaded leaves:
// no RSA leaf (TLS 1.2 clients would fail, every allowed 1.2 suite is
// ECDHE_RSA), or a served orchestra whose wildcard no certificate covers.
func CertWarnings(cfg *Config, leaves []tlsconfig.Leaf) []string {
	if len(leaves) == 0 || cfg.TLS.ACME.Enabled() {
		return nil // ACME obtains an RSA wildcard for every orch
	}
	var warnings []string
	if !slices.ContainsFunc(leaves, func(l tlsconfig.Leaf) bool { return l.RSA }) {
		warnings = append(warnings, "no RSA certificate: the allowed TLS 1.2 suites are all ECDHE_RSA, so TLS 1.2 clients will fail")
	}
	for _, orch := range cfg.Namespace.Orchestras {
		want := "*." + routing.ZoneName(orch, cfg.Namespace.Domain)
		if !slices.ContainsFunc(leaves, func(l tlsconfig.Leaf) bool {
			return slices.ContainsFunc(l.Names, func(n string) bool { return strings.EqualFold(n, want) })
		}) {
			warnings = append(warnings, fmt.Sprintf("no certificate covers %s: handshakes for orch %s will fail", want, orch))
		}
	}
	return warnings
}

// DNSWarnings lists what is risky but not fatal in the dns section: with
// forward set, a dns.address that binds every address of the host (":53",
// "0.0.0.0:53", "[::]:53") offers recursion wherever the host is reachable,
// not only on the private endpoint, and a dns.allow that admits every
// client makes the stub an open resolver.
func DNSWarnings(cfg *Config) []string {
	d := cfg.DNS
	if d.Address == "" || len(d.Forward) == 0 {
		return nil
	}
	var warnings []string
	if host, _, err := net.SplitHostPort(d.Address); err == nil {
		if ip, err := netip.ParseAddr(host); host == "" || err == nil && ip.IsUnspecified() {
			warnings = append(warnings, fmt.Sprintf("dns.forward is set and dns.address %q binds every address of the host: "+
				"the stub resolves any name for every client in dns.allow that reaches the host on any address; "+
				"bind dns.address to the private endpoint's address", d.Address))
		}
	}
	for _, c := range d.Allow {
		if p, err := netip.ParsePrefix(c); err == nil && p.Bits() == 0 {
			warnings = append(warnings, fmt.Sprintf("dns.allow %q admits every client: with dns.forward set the stub is an open resolver wherever dns.address is reachable", c))
		}
	}
	return warnings
}
