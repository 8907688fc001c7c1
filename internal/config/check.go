package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/neo4j/private-ingress/internal/yamlutil"
	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// Check goes beyond Parse: it loads the routes file and the certificates the
// config names, as serve would. Errors make serve fail; warnings are worth
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
	warnings = CertWarnings(cfg, leaves)
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
