package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// dnsBase is a valid config to which the tests append a dns section.
const dnsBase = "orchestras: [\"0000\"]\ntls: {certificates: [{cert: a.crt, key: a.key}]}\n"

// TestDNSAbuseDefaults: dns.max_tcp_connections and dns.allow get their
// defaults when left out, also from an empty or null section.
func TestDNSAbuseDefaults(t *testing.T) {
	for _, doc := range []string{
		dnsBase,
		dnsBase + "dns: {}\n",
		dnsBase + "dns:\n  allow:\n  max_tcp_connections:\n",
		dnsBase + "dns: {address: \"127.0.0.1:53\", answer_ipv4: [\"10.10.10.10\"], forward: [\"10.0.0.2:53\"]}\n",
	} {
		cfg, err := Parse("ingress.yaml", []byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if cfg.DNS.MaxTCPConnections != 256 || dnsstub.DefaultMaxTCPConnections != 256 {
			t.Errorf("%s: max_tcp_connections %d, want 256 (DefaultMaxTCPConnections %d)", doc, cfg.DNS.MaxTCPConnections, dnsstub.DefaultMaxTCPConnections)
		}
		want := []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}
		if !slices.Equal(cfg.DNS.Allow, want) {
			t.Errorf("%s: allow %q, want %q", doc, cfg.DNS.Allow, want)
		}
	}
	// The default is a fresh slice per config.
	a, _ := Parse("ingress.yaml", []byte(dnsBase))
	if len(a.DNS.Allow) == 0 {
		t.Fatal("no default allow")
	}
	a.DNS.Allow[0] = "0.0.0.0/0"
	b, _ := Parse("ingress.yaml", []byte(dnsBase))
	if b.DNS.Allow[0] != "127.0.0.0/8" {
		t.Errorf("a second config's allow starts with %q", b.DNS.Allow[0])
	}
}

func TestDNSAbuseValues(t *testing.T) {
	cfg, err := Parse("ingress.yaml", []byte(dnsBase+"dns:\n  max_tcp_connections: 3\n  allow: [\"203.0.113.0/24\", \"2001:db8::/32\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DNS.MaxTCPConnections != 3 || !slices.Equal(cfg.DNS.Allow, []string{"203.0.113.0/24", "2001:db8::/32"}) {
		t.Errorf("max_tcp_connections %d, allow %q", cfg.DNS.MaxTCPConnections, cfg.DNS.Allow)
	}
	// A changed value is a changed dns section (a reload restarts the stub).
	other := *cfg
	other.DNS.MaxTCPConnections = 4
	if cfg.DNS.Equal(other.DNS) {
		t.Error("max_tcp_connections 3 and 4 compare equal")
	}
	other = *cfg
	other.DNS.Allow = []string{"10.0.0.0/8"}
	if cfg.DNS.Equal(other.DNS) {
		t.Error("two allow lists compare equal")
	}
}

// TestDNSAbuseErrors: bad values are errors at their file:line.
func TestDNSAbuseErrors(t *testing.T) {
	for _, tc := range []struct{ dns, want string }{
		{"dns:\n  max_tcp_connections: 0\n", "ingress.yaml:4: dns.max_tcp_connections must be at least 1"},
		{"dns:\n  ttl: 30\n  max_tcp_connections: -5\n", "ingress.yaml:5: dns.max_tcp_connections must be at least 1"},
		{"dns:\n  allow: []\n", "ingress.yaml:4: dns.allow is empty: no client could use forward; leave allow out for the default (loopback and the private ranges)"},
		{"dns:\n  allow:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n    - nonsense\n    - 10.0.0.1\n",
			"ingress.yaml:6: bad CIDR \"10.0.0.0/33\" in dns.allow (want e.g. 10.0.0.0/8)\n" +
				"ingress.yaml:7: bad CIDR \"nonsense\" in dns.allow (want e.g. 10.0.0.0/8)\n" +
				"ingress.yaml:8: bad CIDR \"10.0.0.1\" in dns.allow (want e.g. 10.0.0.0/8)"},
		{"dns: {allow: [\"fc00::/7\", \"fc00::/129\"], max_tcp_connections: 0}\n",
			"ingress.yaml:3: bad CIDR \"fc00::/129\" in dns.allow (want e.g. 10.0.0.0/8)\n" +
				"ingress.yaml:3: dns.max_tcp_connections must be at least 1"},
	} {
		_, err := Parse("ingress.yaml", []byte(dnsBase+tc.dns))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s\nerr = %v\nwant %s", tc.dns, err, tc.want)
		}
	}
	// A type error is caught by the decoder, at its line too.
	_, err := Parse("ingress.yaml", []byte(dnsBase+"dns:\n  max_tcp_connections: many\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "ingress.yaml:4: ") {
		t.Errorf("max_tcp_connections: many: err = %v, want one at ingress.yaml:4", err)
	}
}

// TestDNSWarnings: forwarding on a wildcard address is worth a warning.
func TestDNSWarnings(t *testing.T) {
	wildcard := func(addr string) string {
		return "dns.forward is set and dns.address \"" + addr + "\" binds every address of the host: " +
			"the stub resolves any name for every client in dns.allow that reaches the host on any address; " +
			"bind dns.address to the private endpoint's address"
	}
	everyone := func(c string) string {
		return "dns.allow \"" + c + "\" admits every client: with dns.forward set the stub is an open resolver wherever dns.address is reachable"
	}
	fwd := []string{"10.0.0.2:53"}
	for _, tc := range []struct {
		address string
		forward []string
		allow   []string
		want    []string
	}{
		{":53", fwd, nil, []string{wildcard(":53")}},
		{"0.0.0.0:53", fwd, nil, []string{wildcard("0.0.0.0:53")}},
		{"[::]:53", fwd, nil, []string{wildcard("[::]:53")}},
		{"[::]:0", fwd, nil, []string{wildcard("[::]:0")}},
		{":53", nil, nil, nil}, // no forwarding: only the zones are answered
		{"127.0.0.1:53", fwd, nil, nil},
		{"10.10.10.10:53", fwd, nil, nil},
		{"[fd00::10]:53", fwd, nil, nil},
		{"", fwd, nil, nil}, // no DNS server
		{"10.10.10.10:53", fwd, []string{"10.0.0.0/8", "0.0.0.0/0", "::/0"}, []string{everyone("0.0.0.0/0"), everyone("::/0")}},
		{":53", fwd, []string{"0.0.0.0/0"}, []string{wildcard(":53"), everyone("0.0.0.0/0")}},
		{"10.10.10.10:53", nil, []string{"0.0.0.0/0"}, nil},
	} {
		cfg := &Config{}
		cfg.DNS = dnsstub.Config{Address: tc.address, Forward: tc.forward, Allow: tc.allow}
		if got := DNSWarnings(cfg); !slices.Equal(got, tc.want) {
			t.Errorf("address %q forward %v allow %v:\nwarnings %q\nwant     %q", tc.address, tc.forward, tc.allow, got, tc.want)
		}
	}
}

// TestCheckWarnsOnWildcardForward: `ingress check` (CheckFile) says it, as
// a warning: the config is still ok.
func TestCheckWarnsOnWildcardForward(t *testing.T) {
	dir := t.TempDir()
	if _, err := tlsconfig.WriteDevCerts(dir, []string{"*.production-orch-0000.neo4j.io"}); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	write("routes.yaml", "instances:\n  - {dbid: abcd1234, orch: \"0000\", public: true}\n")
	base := "orchestras: [\"0000\"]\ntls: {certificates: [{cert: tls.crt, key: tls.key}]}\n"
	for _, tc := range []struct {
		dns  string
		warn bool
	}{
		{"dns: {address: \":53\", answer_ipv4: [\"10.10.10.10\"], forward: [\"10.0.0.2:53\"]}\n", true},
		{"dns: {address: \"0.0.0.0:53\", answer_ipv4: [\"10.10.10.10\"], forward: [\"10.0.0.2:53\"]}\n", true},
		{"dns: {address: \"[::]:53\", answer_ipv4: [\"10.10.10.10\"], forward: [\"10.0.0.2:53\"]}\n", true},
		{"dns: {address: \"10.10.10.10:53\", answer_ipv4: [\"10.10.10.10\"], forward: [\"10.0.0.2:53\"]}\n", false},
		{"dns: {address: \":53\", answer_ipv4: [\"10.10.10.10\"]}\n", false},
	} {
		path := write("ingress.yaml", base+tc.dns)
		summary, warnings, err := CheckFile(path)
		if err != nil {
			t.Fatalf("%s: %v", tc.dns, err)
		}
		if !strings.Contains(summary, ": ok: ") {
			t.Errorf("%s: summary %q", tc.dns, summary)
		}
		got := slices.ContainsFunc(warnings, func(w string) bool { return strings.HasPrefix(w, "dns.forward is set and dns.address") })
		if got != tc.warn {
			t.Errorf("%s: warnings %q, want the wildcard warning: %v", tc.dns, warnings, tc.warn)
		}
	}
}
