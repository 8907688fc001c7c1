package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/neo4j/private-ingress/tlsconfig"
)

// rfc2136Doc is a config with tls.acme through RFC 2136 and no DNS stub;
// section is the rfc2136 mapping's body, indented under it.
func rfc2136Doc(section string) string {
	return `orchestras: ["0000"]
tls:
  acme:
    directory: "https://acme.example/directory"
    dns_provider: rfc2136
    rfc2136:
` + section
}

// TestACMEThroughRFC2136: with dns_provider rfc2136 no dns.address is
// needed; the key's name is canonical whether written with the trailing
// dot or not, the algorithm defaults to hmac-sha256, and the secret file
// is found beside ingress.yaml.
func TestACMEThroughRFC2136(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tsig.secret"), []byte("c2VjcmV0LWtleS1ieXRlcw==\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := tlsconfig.RFC2136{Server: "ns1.example.com:53", TSIGName: "ingress-acme.example.com.", TSIGAlgorithm: "hmac-sha256",
		TSIGSecretFile: filepath.Join(dir, "tsig.secret")}
	for _, tc := range []struct {
		name, section string
		want          tlsconfig.RFC2136
	}{
		{"name without the dot", "      {server: \"ns1.example.com:53\", tsig_name: ingress-acme.example.com, tsig_secret_file: tsig.secret}\n", want},
		{"name with the dot, in capitals", "      server: \"ns1.example.com:53\"\n      tsig_name: Ingress-ACME.example.com.\n      tsig_secret_file: tsig.secret\n", want},
		{"algorithm and zone", "      {server: \"ns1.example.com:53\", tsig_name: ingress-acme.example.com, tsig_algorithm: HMAC-SHA512, tsig_secret_file: tsig.secret, zone: Neo4j.io}\n",
			tlsconfig.RFC2136{Server: want.Server, TSIGName: want.TSIGName, TSIGAlgorithm: "hmac-sha512", TSIGSecretFile: want.TSIGSecretFile, Zone: "neo4j.io."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, dir, rfc2136Doc(tc.section))
			a := cfg.TLS.ACME
			eq(t, "DNSProvider", a.DNSProvider, tlsconfig.DNSProviderRFC2136)
			eq(t, "RFC2136", a.RFC2136, tc.want)
			eq(t, "DNS.Address", cfg.DNS.Address, "")
		})
	}
	// The stub may run beside it.
	doc := rfc2136Doc("      {server: \"ns1.example.com:53\", tsig_name: k, tsig_secret_file: tsig.secret}\n") +
		"dns: {address: \"127.0.0.1:53\", answer_ipv4: [\"10.10.10.10\"]}\n"
	mustParse(t, dir, doc)
	// `ingress dns` reads the same file but publishes no challenge: the
	// key file is none of its business.
	if _, err := parse(filepath.Join(dir, "ingress.yaml"), []byte(strings.Replace(doc, "tsig.secret", "elsewhere", 1)), true); err != nil {
		t.Errorf("LoadDNSOnly with an unreadable key file: %v", err)
	}
}

// TestACMEDefaultProvider: tls.acme without dns_provider is the stub, as
// before; a disabled section stays empty.
func TestACMEDefaultProvider(t *testing.T) {
	cfg := mustParse(t, t.TempDir(), `orchestras: ["0000"]
tls: {acme: {directory: "https://acme.example/dir"}}
dns: {address: ":53", answer_ipv4: ["10.10.10.10"]}
`)
	eq(t, "DNSProvider", cfg.TLS.ACME.DNSProvider, tlsconfig.DNSProviderStub)
	eq(t, "RFC2136", cfg.TLS.ACME.RFC2136, tlsconfig.RFC2136{})
	cfg = mustParse(t, t.TempDir(), minimalConfig)
	eq(t, "disabled", cfg.TLS.ACME, tlsconfig.ACME{})
}

// TestACMEProviderErrors: every mistake in the provider's settings is
// reported at its line.
func TestACMEProviderErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("good.secret", "c2VjcmV0\n")
	write("empty.secret", "\n\t \n")
	write("bad.secret", "key \"k.\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };\n")
	const good = "      server: \"ns1.example.com:53\"\n      tsig_name: k\n      tsig_secret_file: good.secret\n"
	for _, tc := range []struct {
		name, doc string
		want      []string // the lines of the error
	}{
		{"missing server", rfc2136Doc("      tsig_name: k\n      tsig_secret_file: good.secret\n"),
			[]string{"ingress.yaml:7: tls.acme.rfc2136.server: the address of the zone's primary server is needed, host:port (e.g. ns1.example.com:53)"}},
		{"server without port", rfc2136Doc(strings.Replace(good, ":53", "", 1)),
			[]string{`ingress.yaml:7: tls.acme.rfc2136.server: "ns1.example.com": want host:port, e.g. ns1.example.com:53`}},
		{"missing secret file", rfc2136Doc(strings.Replace(good, "good.secret", "none.secret", 1)),
			[]string{fmt.Sprintf("ingress.yaml:9: tls.acme.rfc2136.tsig_secret_file: reading the TSIG secret: stat %s: no such file or directory", filepath.Join(dir, "none.secret"))}},
		{"empty secret file", rfc2136Doc(strings.Replace(good, "good.secret", "empty.secret", 1)),
			[]string{fmt.Sprintf("ingress.yaml:9: tls.acme.rfc2136.tsig_secret_file: the TSIG secret file %s is empty", filepath.Join(dir, "empty.secret"))}},
		{"a key statement in the secret file", rfc2136Doc(strings.Replace(good, "good.secret", "bad.secret", 1)),
			[]string{fmt.Sprintf("ingress.yaml:9: tls.acme.rfc2136.tsig_secret_file: the TSIG secret file %s does not hold a base64 secret alone (illegal base64 data at input byte 3); write only the value after \"secret\"", filepath.Join(dir, "bad.secret"))}},
		{"no secret file", rfc2136Doc("      server: \"ns1.example.com:53\"\n      tsig_name: k\n"),
			[]string{"ingress.yaml:7: tls.acme.rfc2136.tsig_secret_file: a file holding the TSIG key's base64 secret is needed"}},
		{"bad algorithm", rfc2136Doc(good + "      tsig_algorithm: hmac-sha3\n"),
			[]string{`ingress.yaml:10: tls.acme.rfc2136.tsig_algorithm: unknown TSIG algorithm "hmac-sha3" (known: hmac-sha256, hmac-sha512, hmac-sha384, hmac-sha224, hmac-sha1)`}},
		{"bad key name", rfc2136Doc(strings.Replace(good, "tsig_name: k", "tsig_name: \"k..x\"", 1)),
			[]string{`ingress.yaml:8: tls.acme.rfc2136.tsig_name: "k..x" is not a DNS name`}},
		{"no section at all", strings.TrimSuffix(rfc2136Doc(""), "    rfc2136:\n"),
			[]string{
				"ingress.yaml:4: tls.acme.rfc2136.server: the address of the zone's primary server is needed, host:port (e.g. ns1.example.com:53)",
				"ingress.yaml:4: tls.acme.rfc2136.tsig_name: the TSIG key's name is needed, as the server knows it",
				"ingress.yaml:4: tls.acme.rfc2136.tsig_secret_file: a file holding the TSIG key's base64 secret is needed",
			}},
		{"unknown provider", strings.Replace(rfc2136Doc(good), "dns_provider: rfc2136", "dns_provider: route53", 1),
			[]string{"ingress.yaml:5: tls.acme.dns_provider \"route53\" is not known (known: stub, rfc2136)"}},
		{"rfc2136 settings for the stub", strings.Replace(rfc2136Doc(good), "dns_provider: rfc2136", "dns_provider: stub", 1) + "dns: {address: \":53\", answer_ipv4: [\"10.10.10.10\"]}\n",
			[]string{"ingress.yaml:7: tls.acme.rfc2136 is set but dns_provider is stub: set dns_provider: rfc2136, or remove it"}},
		{"the stub without dns.address", strings.Replace(rfc2136Doc(good), "    dns_provider: rfc2136\n    rfc2136:\n"+good, "", 1),
			[]string{"ingress.yaml:4: tls.acme needs dns.address: the DNS-01 challenges are served by the DNS stub, which must be the zones' authority for the ACME server (or set dns_provider: rfc2136)"}},
		{"provider without directory", "orchestras: [\"0000\"]\ntls:\n  certificates: [{cert: a.crt, key: a.key}]\n  acme: {dns_provider: rfc2136}\n",
			[]string{"ingress.yaml:4: tls.acme has settings but no directory; set directory or remove the section"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "ingress.yaml"), []byte(tc.doc))
			if err == nil {
				t.Fatalf("no error for\n%s", tc.doc)
			}
			got := strings.ReplaceAll(err.Error(), filepath.Join(dir, "ingress.yaml"), "ingress.yaml")
			if want := strings.Join(tc.want, "\n"); got != want {
				t.Errorf("error:\n%s\nwant:\n%s\ndocument:\n%s", got, want, tc.doc)
			}
		})
	}
}

// TestACMEProviderChangeNeedsRestart: the publisher is made when ACME
// starts, so a changed provider or key is reported at SIGHUP as taking
// effect at the next restart.
func TestACMEProviderChangeNeedsRestart(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tsig.secret"), []byte("c2VjcmV0\n"), 0o600)
	doc := rfc2136Doc("      {server: \"ns1.example.com:53\", tsig_name: k, tsig_secret_file: tsig.secret}\n")
	cur := mustParse(t, dir, doc)
	for _, next := range []string{
		strings.Replace(doc, "ns1.example.com:53", "ns2.example.com:53", 1),
		strings.Replace(doc, "tsig_name: k", "tsig_name: other", 1),
		strings.Replace(doc, "tsig_name: k", "tsig_name: k, zone: neo4j.io", 1),
	} {
		if got := NeedRestart(cur, mustParse(t, dir, next)); !slices.Equal(got, []string{"tls.acme"}) {
			t.Errorf("NeedRestart = %q, want tls.acme, for\n%s", got, next)
		}
	}
	if got := NeedRestart(cur, mustParse(t, dir, strings.Replace(doc, "tsig_name: k", "tsig_name: K.", 1))); got != nil {
		t.Errorf("the same key name spelt otherwise: NeedRestart = %q", got)
	}
}

// TestExampleRFC2136 parses examples/ingress.yaml with its commented
// rfc2136 section in place of the acme line: the example is valid as
// written.
func TestExampleRFC2136(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "ingress.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(data)) {
		switch {
		case strings.HasPrefix(line, "  acme: {"):
			continue // the stub's, replaced by the commented one
		case strings.HasPrefix(line, "  # acme:"), strings.HasPrefix(line, "  #   "):
			line = "  " + strings.TrimPrefix(line, "  # ")
		}
		out = append(out, line)
	}
	doc := strings.Join(out, "")
	if !strings.Contains(doc, "  acme:\n    directory:") {
		t.Fatalf("no commented rfc2136 example in examples/ingress.yaml:\n%s", doc)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tsig.secret"), []byte("c2VjcmV0\n"), 0o600)
	a := mustParse(t, dir, doc).TLS.ACME
	eq(t, "DNSProvider", a.DNSProvider, tlsconfig.DNSProviderRFC2136)
	eq(t, "RFC2136", a.RFC2136, tlsconfig.RFC2136{Server: "ns1.example.com:53", TSIGName: "ingress-acme.", TSIGAlgorithm: "hmac-sha256",
		TSIGSecretFile: filepath.Join(dir, "tsig.secret")})
}
