package knottest

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// TestKnotServesTheZone: knotd starts, answers the zone's SOA and NS, and
// refuses names outside it.
func TestKnotServesTheZone(t *testing.T) {
	k := Start(t, "Neo4j.IO", "hmac-sha256")
	if k.Zone != "neo4j.io." || k.Key.Name != "ingress-acme." || k.Key.Secret == "" || k.Outsider.Secret == k.Key.Secret {
		t.Errorf("zone %q, keys %+v and %+v", k.Zone, k.Key, k.Outsider)
	}
	r, err := k.Query("neo4j.io.", dns.TypeNS)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("NS neo4j.io.: %v %v", r, err)
	}
	r, err = k.Query("example.com.", dns.TypeSOA)
	if err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("SOA example.com.: %v %v, want REFUSED", r, err)
	}
	if got := k.TXT(t, "_acme-challenge.production-orch-0000.neo4j.io."); len(got) != 0 {
		t.Errorf("TXT before any update: %q", got)
	}
}

// TestKnotStartRetriesOnATakenPort: a port taken between picking and
// binding costs a start on another port, not the test.
func TestKnotStartRetriesOnATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var picks []int
	pickPort = func(t testing.TB) int {
		p := freePort(t)
		if len(picks) == 0 {
			p = taken.Addr().(*net.TCPAddr).Port
		}
		picks = append(picks, p)
		return p
	}
	defer func() { pickPort = freePort }()
	k := Start(t, "neo4j.io.", "hmac-sha512")
	if len(picks) < 2 || k.Addr == taken.Addr().String() {
		t.Errorf("ports picked %v, want a second start on a fresh one", picks)
	}
	if k.Key.Algorithm != "hmac-sha512" {
		t.Errorf("algorithm %q", k.Key.Algorithm)
	}
}
