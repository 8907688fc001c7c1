package dnsstub_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/internal/testenv"
)

// TestUDPBatchesAnswerEachSender: datagrams from many senders, queued
// together so that the stub reads them in batches, the fast path's A
// queries mixed with the slow path's (SOA, TXT, a refused name) and with
// garbage that gets no answer, over IPv4 and IPv6: every sender gets the
// answer to each of its own queries, at its own address, and nothing else.
func TestUDPBatchesAnswerEachSender(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			if probe, err := net.ListenPacket("udp", addr); err != nil {
				t.Skipf("no %s here: %v", addr, err)
			} else {
				probe.Close()
			}
			s, reg := startStub(t, dnsstub.Config{Address: addr, AnswerIPv4: []string{"10.10.10.10"}}, nil)
			server, err := net.ResolveUDPAddr("udp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			host, _, _ := net.SplitHostPort(addr)

			const senders, each = 8, 12
			socks := make([]*net.UDPConn, senders)
			for i := range socks {
				c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				socks[i] = c
			}
			// Everything is sent before anything is read: the stub finds
			// the datagrams of all senders queued together.
			want := map[*net.UDPConn]map[uint16]string{}
			for q := range each {
				for i, c := range socks {
					if q%4 == 3 {
						c.WriteToUDP([]byte{0xde, 0xad}, server) // too short for a header: no answer
						continue
					}
					m := new(dns.Msg)
					name, qtype := fmt.Sprintf("s%dq%d.production-orch-0000.neo4j.io.", i, q), dns.TypeA
					switch q % 4 {
					case 1:
						name, qtype = "production-orch-0000.neo4j.io.", dns.TypeSOA
					case 2:
						name, qtype = fmt.Sprintf("s%dq%d.example.org.", i, q), dns.TypeTXT // not ours: REFUSED
					}
					m.SetQuestion(name, qtype)
					m.Id = uint16(i<<8 | q)
					b, err := m.Pack()
					if err != nil {
						t.Fatal(err)
					}
					if _, err := c.WriteToUDP(b, server); err != nil {
						t.Fatal(err)
					}
					if want[c] == nil {
						want[c] = map[uint16]string{}
					}
					want[c][m.Id] = name
				}
			}
			for i, c := range socks {
				buf := make([]byte, 4096)
				for len(want[c]) > 0 {
					c.SetReadDeadline(time.Now().Add(testenv.WaitTimeout))
					n, from, err := c.ReadFromUDP(buf)
					if err != nil {
						t.Fatalf("sender %d: %v; still waiting for %v", i, err, want[c])
					}
					if from.String() != server.String() {
						t.Errorf("sender %d: answer from %s, want %s", i, from, server)
					}
					var r dns.Msg
					if err := r.Unpack(buf[:n]); err != nil {
						t.Fatalf("sender %d: %v", i, err)
					}
					name, ok := want[c][r.Id]
					if !ok || len(r.Question) != 1 || r.Question[0].Name != name {
						t.Fatalf("sender %d got an answer it did not ask for: %v", i, &r)
					}
					delete(want[c], r.Id)
				}
			}
			// The fast path's answers are counted like the others.
			if got := testutil.ToFloat64(mustCounter(t, reg, "A", "NOERROR")); got != senders*each/4 {
				t.Errorf("A NOERROR counted %v, want %d", got, senders*each/4)
			}
		})
	}
}
