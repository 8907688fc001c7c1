package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/routing"
)

// BenchmarkDNSQuery is one UDP query for a random dbid through the real
// stub on loopback. bench/dnscompare/run.sh measures it against Knot with
// dnsperf; this is the quick in-process figure.
func BenchmarkDNSQuery(b *testing.B) {
	s := dnsstub.New(dnsstub.Options{
		Config:    dnsstub.Config{Address: "127.0.0.1:0", AnswerIPv4: []string{"10.10.10.10"}, TTL: 60},
		Namespace: routing.Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}},
	})
	if err := s.Listen(context.Background()); err != nil {
		b.Fatal(err)
	}
	go s.Serve()
	b.Cleanup(func() { s.Shutdown(context.Background()) })
	var seq atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := &dns.Client{Timeout: 2 * time.Second}
		conn, err := c.Dial(s.Addr())
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		q := new(dns.Msg)
		for pb.Next() {
			q.SetQuestion(fmt.Sprintf("db%07d.production-orch-0000.neo4j.io.", seq.Add(1)), dns.TypeA)
			resp, _, err := c.ExchangeWithConn(q, conn)
			if err != nil || len(resp.Answer) != 1 {
				b.Errorf("query: %v %v", resp, err)
				return
			}
		}
	})
}
