package routing

import (
	"strings"
	"testing"
)

const testDomain = "neo4j.io"

// longDomain returns a domain made of valid labels such that
// "abcd1234.production-orch-0000." + domain is exactly total bytes long.
func longDomain(t testing.TB, total int) string {
	t.Helper()
	const head = "abcd1234.production-orch-0000."
	n := total - len(head)
	var labels []string
	for n > 0 {
		l := min(n, 63)
		if n-l == 1 { // a label of 0 characters would be left: split differently
			l--
		}
		labels = append(labels, strings.Repeat("d", l))
		n -= l + 1 // the dot before the next label
	}
	d := strings.Join(labels, ".")
	if got := len(head + d); got != total {
		t.Fatalf("longDomain(%d) built a %d-byte name", total, got)
	}
	return d
}

func TestSplitName(t *testing.T) {
	dbid63 := strings.Repeat("a", 63)
	dbid64 := strings.Repeat("a", 64)
	orch47 := strings.Repeat("0", 47) // production-orch- + 47 = a 63-byte label
	orch48 := strings.Repeat("0", 48)
	dom253 := longDomain(t, 253)
	dom254 := longDomain(t, 254)

	tests := []struct {
		name     string
		host     string
		domain   string // testDomain when empty
		wantDBID string
		wantOrch string
		wantOK   bool
	}{
		{name: "lower case", host: "abcd1234.production-orch-0000.neo4j.io", wantDBID: "abcd1234", wantOrch: "0000", wantOK: true},
		{name: "upper case keeps original case", host: "ABCD1234.PRODUCTION-ORCH-0000.NEO4J.IO", wantDBID: "ABCD1234", wantOrch: "0000", wantOK: true},
		{name: "upper case orch keeps original case", host: "ABCD1234.PRODUCTION-ORCH-00AB.NEO4J.IO", wantDBID: "ABCD1234", wantOrch: "00AB", wantOK: true},
		{name: "mixed case", host: "AbCd1234.Production-Orch-0000.Neo4j.Io", wantDBID: "AbCd1234", wantOrch: "0000", wantOK: true},
		{name: "trailing dot", host: "abcd1234.production-orch-0000.neo4j.io.", wantDBID: "abcd1234", wantOrch: "0000", wantOK: true},
		{name: "double trailing dot", host: "abcd1234.production-orch-0000.neo4j.io.."},
		{name: "only a dot", host: "."},
		{name: "empty", host: ""},
		{name: "extra label", host: "a.abcd1234.production-orch-0000.neo4j.io"},
		{name: "empty dbid label in the middle", host: "abcd1234..neo4j.io"},
		{name: "empty leading label", host: ".production-orch-0000.neo4j.io"},
		{name: "empty label before domain", host: "abcd1234.production-orch-0000..neo4j.io"},
		{name: "empty label inside domain", host: "abcd1234.production-orch-0000.neo4j..io"},
		{name: "IPv4 literal", host: "10.0.0.1"},
		{name: "IPv6 literal bracketed", host: "[::1]"},
		{name: "IPv6 literal", host: "::1"},
		{name: "host with port", host: "abcd1234.production-orch-0000.neo4j.io:443"},
		{name: "other orch parses", host: "abcd1234.production-orch-0001.neo4j.io", wantDBID: "abcd1234", wantOrch: "0001", wantOK: true},
		{name: "other domain", host: "abcd1234.production-orch-0000.neo4j.com"},
		{name: "domain suffix without dot boundary", host: "abcd1234.production-orch-0000.evilneo4j.io"},
		{name: "domain as prefix", host: "abcd1234.production-orch-0000.neo4j.io.evil.com"},
		{name: "domain with extra char", host: "abcd1234.production-orch-0000.neo4j.iox"},
		{name: "domain only", host: "neo4j.io"},
		{name: "domain only with leading dot", host: ".neo4j.io"},
		{name: "empty orch", host: "abcd1234.production-orch-.neo4j.io"},
		{name: "orch prefix without hyphen", host: "abcd1234.production-orch.neo4j.io"},
		{name: "wrong orch prefix", host: "abcd1234.staging-orch-0000.neo4j.io"},
		{name: "orch prefix mangled", host: "abcd1234.production-orcha0000.neo4j.io"},
		{name: "orch label ends with hyphen", host: "abcd1234.production-orch-0000-.neo4j.io"},
		{name: "punycode dbid", host: "xn--bcher-kva.production-orch-0000.neo4j.io", wantDBID: "xn--bcher-kva", wantOrch: "0000", wantOK: true},
		{name: "raw UTF-8 dbid", host: "bücher.production-orch-0000.neo4j.io"},
		{name: "raw UTF-8 in orch", host: "abcd1234.production-orch-00ü0.neo4j.io"},
		{name: "unicode case fold of domain", host: "abcd1234.production-orch-0000.\u212A8s.io", domain: "k8s.io"},
		{name: "underscore in dbid", host: "ab_cd.production-orch-0000.neo4j.io"},
		{name: "wildcard dbid", host: "*.production-orch-0000.neo4j.io"},
		{name: "space in dbid", host: "ab cd.production-orch-0000.neo4j.io"},
		{name: "NUL in dbid", host: "ab\x00cd.production-orch-0000.neo4j.io"},
		{name: "63-char dbid", host: dbid63 + ".production-orch-0000.neo4j.io", wantDBID: dbid63, wantOrch: "0000", wantOK: true},
		{name: "64-char dbid", host: dbid64 + ".production-orch-0000.neo4j.io"},
		{name: "63-char orch label", host: "abcd1234.production-orch-" + orch47 + ".neo4j.io", wantDBID: "abcd1234", wantOrch: orch47, wantOK: true},
		{name: "64-char orch label", host: "abcd1234.production-orch-" + orch48 + ".neo4j.io"},
		{name: "longer than 253 with neo4j.io", host: strings.Repeat("a", 250) + ".production-orch-0000.neo4j.io"},
		{name: "253 bytes with long domain", host: "abcd1234.production-orch-0000." + dom253, domain: dom253, wantDBID: "abcd1234", wantOrch: "0000", wantOK: true},
		{name: "253 bytes and trailing dot", host: "abcd1234.production-orch-0000." + dom253 + ".", domain: dom253, wantDBID: "abcd1234", wantOrch: "0000", wantOK: true},
		{name: "254 bytes with long domain", host: "abcd1234.production-orch-0000." + dom254, domain: dom254},
		{name: "leading hyphen in dbid", host: "-abcd.production-orch-0000.neo4j.io"},
		{name: "trailing hyphen in dbid", host: "abcd-.production-orch-0000.neo4j.io"},
		{name: "inner hyphen in dbid", host: "ab-cd.production-orch-0000.neo4j.io", wantDBID: "ab-cd", wantOrch: "0000", wantOK: true},
		{name: "one-char dbid", host: "a.production-orch-0000.neo4j.io", wantDBID: "a", wantOrch: "0000", wantOK: true},
		{name: "bare zone name", host: "production-orch-0000.neo4j.io"},
		{name: "bare zone name with trailing dot", host: "production-orch-0000.neo4j.io."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			domain := tc.domain
			if domain == "" {
				domain = testDomain
			}
			dbid, orch, ok := SplitName(tc.host, domain)
			if dbid != tc.wantDBID || orch != tc.wantOrch || ok != tc.wantOK {
				t.Errorf("SplitName(%q, %q) = %q, %q, %v; want %q, %q, %v",
					tc.host, domain, dbid, orch, ok, tc.wantDBID, tc.wantOrch, tc.wantOK)
			}
		})
	}
}

func TestSplitNameDoesNotAllocate(t *testing.T) {
	for _, host := range []string{
		"ABCD1234.PRODUCTION-ORCH-0000.NEO4J.IO.",
		"abcd1234.production-orch-0000.neo4j.io",
		"evil.example.com",
	} {
		allocs := testing.AllocsPerRun(1000, func() {
			SplitName(host, testDomain)
		})
		if allocs != 0 {
			t.Errorf("SplitName(%q) allocates %v times per call; want 0", host, allocs)
		}
	}
}

func TestZoneName(t *testing.T) {
	tests := []struct {
		orch, domain, want string
	}{
		{"0000", "neo4j.io", "production-orch-0000.neo4j.io"},
		{"abcd", "example.com", "production-orch-abcd.example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			got := ZoneName(tc.orch, tc.domain)
			if got != tc.want {
				t.Fatalf("ZoneName(%q, %q) = %q; want %q", tc.orch, tc.domain, got, tc.want)
			}
			// A database name built under the zone splits back to its parts.
			dbid, orch, ok := SplitName("abcd1234."+got, tc.domain)
			if !ok || dbid != "abcd1234" || orch != tc.orch {
				t.Errorf("SplitName(abcd1234.%s) = %q, %q, %v; want abcd1234, %q, true", got, dbid, orch, ok, tc.orch)
			}
		})
	}
}

func TestValidLabel(t *testing.T) {
	tests := []struct {
		label string
		want  bool
	}{
		{"a", true},
		{"abcd1234", true},
		{"ABCD-1234", true},
		{"xn--bcher-kva", true},
		{strings.Repeat("a", 63), true},
		{"", false},
		{strings.Repeat("a", 64), false},
		{"-a", false},
		{"a-", false},
		{"a.b", false},
		{"a_b", false},
		{"bücher", false},
		{"*", false},
	}
	for _, tc := range tests {
		t.Run(tc.label, func(t *testing.T) {
			if got := ValidLabel(tc.label); got != tc.want {
				t.Errorf("ValidLabel(%q) = %v; want %v", tc.label, got, tc.want)
			}
		})
	}
}
