package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/neo4j/private-ingress/internal/yamlutil"
)

// fuzzFile is the name Parse is given; every error line must start with it.
const fuzzFile = "conf/ingress.yaml"

var fuzzLineRE = regexp.MustCompile(`^` + regexp.QuoteMeta(fuzzFile) + `(:[1-9][0-9]*)?: `)

func FuzzParse(f *testing.F) {
	f.Add([]byte(designExample))
	f.Add([]byte(minimalConfig))
	f.Add([]byte(""))
	f.Add([]byte("orchestras: [\"0000\"]\ntls: {certificates: [{cert: a.crt, key: a.key}]}\ntimeouts: {handshake: 10s\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("listeners:\n  - &l {service: https, address: \":443\"}\n  - *l\n"))
	f.Add([]byte("timeouts: {idle: 30, handshake: 0s, drain: -1s}\nlimits: {max_connections: 0}\n"))
	f.Add([]byte("domain: a\ndomain: b\n"))
	f.Add([]byte("dns: {address: \":53\", answer_ipv4: [\"::1\"], answer_ipv6: [\"1.2.3.4\"], forward: [\"x\"], ttl: ~}\n"))
	if full, err := os.ReadFile(filepath.Join("testdata", "full.yaml")); err == nil {
		f.Add(full)
	}
	if docs, err := filepath.Glob(filepath.Join("testdata", "errors", "*.yaml")); err == nil {
		for _, d := range docs {
			if data, err := os.ReadFile(d); err == nil {
				f.Add(data)
			}
		}
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(fuzzFile, data)
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned a config and an error: %v", err)
			}
			var list yamlutil.Errors
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T %q is not a non-empty yamlutil.Errors", err, err)
			}
			for l := range strings.SplitSeq(err.Error(), "\n") {
				if !fuzzLineRE.MatchString(l) {
					t.Fatalf("error line %q does not start with %q; whole error:\n%s", l, fuzzFile, err)
				}
			}
			return
		}
		if cfg == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		// A config without an error satisfies what validation promises.
		switch {
		case cfg.Path != fuzzFile:
			t.Fatalf("Path = %q", cfg.Path)
		case cfg.Namespace.Domain == "" || len(cfg.Namespace.Orchestras) == 0:
			t.Fatalf("Namespace = %+v", cfg.Namespace)
		case len(cfg.Ingress.Listeners) == 0:
			t.Fatal("no listeners")
		case len(cfg.TLS.Certificates) == 0:
			t.Fatal("no certificates")
		case cfg.Routes.File == "":
			t.Fatal("no routes file")
		case !slices.Contains([]string{"off", "optional", "required"}, cfg.Ingress.ProxyProtocol.Mode),
			cfg.Ingress.ProxyProtocol.Mode != "off" && len(cfg.Ingress.ProxyProtocol.TrustedCIDRs) == 0:
			t.Fatalf("proxy_protocol.mode = %q", cfg.Ingress.ProxyProtocol.Mode)
		case cfg.Ingress.Timeouts.Handshake <= 0 || cfg.Ingress.Timeouts.Idle < 0 || cfg.Ingress.Timeouts.Drain < 0:
			t.Fatalf("timeouts = %+v", cfg.Ingress.Timeouts)
		case cfg.Ingress.Backend.DialTimeout <= 0:
			t.Fatalf("dial_timeout = %v", cfg.Ingress.Backend.DialTimeout)
		case cfg.Ingress.Limits.MaxConnections < 1:
			t.Fatalf("max_connections = %d", cfg.Ingress.Limits.MaxConnections)
		case cfg.Admin.Address == "":
			t.Fatal("no admin address")
		case cfg.Log.Level == "" || cfg.Log.Format == "":
			t.Fatalf("log = %+v", cfg.Log)
		}
		for _, c := range cfg.TLS.Certificates {
			if c.Cert == "" || c.Key == "" {
				t.Fatalf("certificate %+v", c)
			}
		}
	})
}
