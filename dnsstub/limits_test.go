package dnsstub_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/internal/testenv"
)

const zoneName = "abcd1234.production-orch-0000.neo4j.io."

// countingUpstream is a resolver on loopback (UDP) that answers every
// query with one A record and counts what it was asked.
func countingUpstream(t *testing.T) (addr string, queries *atomic.Int64) {
	t.Helper()
	queries = new(atomic.Int64)
	up := &dns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
				A:   net.IPv4(192, 0, 2, 7),
			})
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	up.NotifyStartedFunc = func() { close(started) }
	errc := make(chan error, 1)
	go func() { errc <- up.ListenAndServe() }()
	select {
	case <-started:
	case err := <-errc:
		t.Fatalf("upstream: %v", err)
	}
	t.Cleanup(func() { up.Shutdown() })
	return up.PacketConn.LocalAddr().String(), queries
}

// counterValue reads an unlabelled counter from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// tcpQuery asks for name over an open TCP connection.
func tcpQuery(conn net.Conn, name string, qtype uint16) (*dns.Msg, error) {
	c := &dns.Conn{Conn: conn}
	conn.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	if err := c.WriteMsg(q); err != nil {
		return nil, err
	}
	return c.ReadMsg()
}

// TestTCPConnectionCap: with max_tcp_connections at 3, a 4th connection is
// closed at accept and counted; once one of the 3 closes, a new one is
// served.
func TestTCPConnectionCap(t *testing.T) {
	s, reg := startStub(t, dnsstub.Config{AnswerIPv4: []string{"10.10.10.10"}, MaxTCPConnections: 3}, nil)
	var held []net.Conn
	for i := range 3 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// Served: the stub has accepted and counted it. It stays open, idle.
		if resp, err := tcpQuery(c, zoneName, dns.TypeA); err != nil || len(resp.Answer) != 1 {
			t.Fatalf("connection %d: %v %v", i+1, resp, err)
		}
		held = append(held, c)
	}

	extra, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	resp, err := tcpQuery(extra, zoneName, dns.TypeA)
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("a 4th connection over the cap of 3 was answered:\n%v", resp)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("a 4th connection over the cap of 3 was held open, not closed: %v", err)
	case !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE):
		t.Fatalf("the 4th connection: %v, want EOF or a reset", err)
	}
	if n := counterValue(t, reg, "dnsstub_tcp_refused_total"); n != 1 {
		t.Errorf("dnsstub_tcp_refused_total = %v, want 1", n)
	}

	// The held ones still work.
	if resp, err := tcpQuery(held[2], zoneName, dns.TypeA); err != nil || len(resp.Answer) != 1 {
		t.Fatalf("held connection after the refusal: %v %v", resp, err)
	}

	// One closes: the stub sees it (EOF) and gives its place back.
	held[0].Close()
	testenv.WaitFor(t, "a new TCP connection served after one of 3 closed", func() bool {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			return false
		}
		defer c.Close()
		resp, err := tcpQuery(c, zoneName, dns.TypeA)
		return err == nil && resp.Rcode == dns.RcodeSuccess && len(resp.Answer) == 1
	})
}

// TestAllowExcludesLoopback: with allow: [10.0.0.0/8] the test client
// (127.0.0.1) is not forwarded for: REFUSED for names outside the zones,
// ANY included, over UDP and TCP; names in the zones are answered; the
// upstream is never asked.
func TestAllowExcludesLoopback(t *testing.T) {
	upstream, asked := countingUpstream(t)
	s, _ := startStub(t, dnsstub.Config{AnswerIPv4: []string{"10.10.10.10"}, Forward: []string{upstream}, Allow: []string{"10.0.0.0/8"}}, nil)
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: testenv.WaitTimeout}
		for _, tc := range []struct {
			name   string
			qtype  uint16
			rcode  int
			answer int
		}{
			{"www.example.com.", dns.TypeA, dns.RcodeRefused, 0},
			{"example.com.", dns.TypeANY, dns.RcodeRefused, 0},
			{zoneName, dns.TypeA, dns.RcodeSuccess, 1},
		} {
			q := new(dns.Msg)
			q.SetQuestion(tc.name, tc.qtype)
			resp, _, err := c.Exchange(q, s.Addr())
			if err != nil {
				t.Fatalf("%s %s %s: %v", network, tc.name, dns.TypeToString[tc.qtype], err)
			}
			if resp.Rcode != tc.rcode || len(resp.Answer) != tc.answer {
				t.Errorf("%s %s %s: %s with %d answers, want %s with %d", network, tc.name, dns.TypeToString[tc.qtype],
					dns.RcodeToString[resp.Rcode], len(resp.Answer), dns.RcodeToString[tc.rcode], tc.answer)
			}
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the upstream was asked %d queries for a client outside allow, want 0", n)
	}
}

// TestANYNeverRelayed: a 40-byte ANY for a name outside the zones, from a
// client allowed to forward, gets a small synthesized HINFO (RFC 8482) and
// the upstream is never asked; an A for the same name still goes upstream.
func TestANYNeverRelayed(t *testing.T) {
	upstream, asked := countingUpstream(t)
	s, _ := startStub(t, dnsstub.Config{AnswerIPv4: []string{"10.10.10.10"}, Forward: []string{upstream}}, nil)
	q := new(dns.Msg)
	q.SetQuestion("example.com.", dns.TypeANY)
	q.SetEdns0(4096, false)
	pkt, err := q.Pack()
	if err != nil || len(pkt) != 40 {
		t.Fatalf("the query is %d bytes (%v), want 40", len(pkt), err)
	}
	conn, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	if _, err := conn.Write(pkt); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	resp := new(dns.Msg)
	if err := resp.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if n > 2*len(pkt) {
		t.Errorf("a %d-byte answer to a %d-byte ANY: amplification", n, len(pkt))
	}
	var h *dns.HINFO
	if len(resp.Answer) == 1 {
		h, _ = resp.Answer[0].(*dns.HINFO)
	}
	if resp.Rcode != dns.RcodeSuccess || h == nil || h.Cpu != "RFC8482" || h.Os != "" {
		t.Fatalf("ANY example.com.: want one HINFO \"RFC8482\" \"\", got\n%v", resp)
	}
	if n := asked.Load(); n != 0 {
		t.Fatalf("the upstream was asked %d queries for an ANY, want 0", n)
	}
	// The upstream works: an A for the same name is relayed.
	q.SetQuestion("example.com.", dns.TypeA)
	if resp, _, err := (&dns.Client{Timeout: testenv.WaitTimeout}).Exchange(q, s.Addr()); err != nil || len(resp.Answer) != 1 {
		t.Fatalf("A example.com. through the upstream: %v %v", resp, err)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the upstream was asked %d queries, want only the A", n)
	}
}

// TestCHAOSNotForwarded: CH TXT version.bind is REFUSED, not relayed.
func TestCHAOSNotForwarded(t *testing.T) {
	upstream, asked := countingUpstream(t)
	s, _ := startStub(t, dnsstub.Config{AnswerIPv4: []string{"10.10.10.10"}, Forward: []string{upstream}}, nil)
	for _, name := range []string{"version.bind.", "hostname.bind.", zoneName} {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeTXT)
		q.Question[0].Qclass = dns.ClassCHAOS
		resp, _, err := (&dns.Client{Timeout: testenv.WaitTimeout}).Exchange(q, s.Addr())
		if err != nil || resp.Rcode != dns.RcodeRefused {
			t.Errorf("CH TXT %s: %v %v, want REFUSED", name, resp, err)
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the upstream was asked %d CH queries, want 0", n)
	}
}

// TestZoneTransfersRefused: AXFR and IXFR get one REFUSED message at once,
// over TCP and UDP, so that a transfer client ends at the first message
// instead of waiting for a closing SOA that never comes.
func TestZoneTransfersRefused(t *testing.T) {
	upstream, asked := countingUpstream(t)
	s, _ := startStub(t, dnsstub.Config{AnswerIPv4: []string{"10.10.10.10"}, Forward: []string{upstream}}, nil)
	const zone = "production-orch-0000.neo4j.io."
	axfr := func(name string) *dns.Msg {
		m := new(dns.Msg)
		m.SetAxfr(name)
		return m
	}
	ixfr := func(name string) *dns.Msg {
		m := new(dns.Msg)
		m.SetIxfr(name, 1, "ns1."+zone, "hostmaster."+zone)
		return m
	}
	for _, tc := range []struct {
		what string
		q    *dns.Msg
	}{
		{"AXFR of the zone", axfr(zone)},
		{"IXFR of the zone", ixfr(zone)},
		{"AXFR of an outside name", axfr("example.com.")},
	} {
		// dig and zone checkers use a transfer client: one envelope, the
		// error, and the channel closes.
		tr := &dns.Transfer{ReadTimeout: testenv.WaitTimeout}
		env, err := tr.In(tc.q, s.Addr())
		if err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		var envs []*dns.Envelope
		for e := range env {
			envs = append(envs, e)
		}
		if len(envs) != 1 || envs[0].Error == nil || !strings.Contains(envs[0].Error.Error(), "bad xfr rcode: 5") {
			var got []string
			for _, e := range envs {
				got = append(got, strings.TrimSpace(strings.ReplaceAll(strings.Join(rrStrings(e.RR), " ")+" "+errString(e.Error), "\t", " ")))
			}
			t.Errorf("%s over a transfer client: envelopes %q, want one, with the error \"bad xfr rcode: 5\" (REFUSED)", tc.what, got)
		}

		// A plain exchange: one message, REFUSED, nothing in it; and the
		// TCP connection then answers the next query.
		conn, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c := &dns.Conn{Conn: conn}
		conn.SetDeadline(time.Now().Add(testenv.WaitTimeout))
		if err := c.WriteMsg(tc.q); err != nil {
			t.Fatal(err)
		}
		resp, err := c.ReadMsg()
		if err != nil || resp.Rcode != dns.RcodeRefused || len(resp.Answer)+len(resp.Ns) != 0 {
			t.Errorf("%s over TCP: %v %v, want REFUSED and nothing else", tc.what, resp, err)
		}
		if resp, err := tcpQuery(conn, zoneName, dns.TypeA); err != nil || len(resp.Answer) != 1 {
			t.Errorf("a query after the %s on the same connection: %v %v", tc.what, resp, err)
		}
		conn.Close()

		resp, _, err = (&dns.Client{Timeout: testenv.WaitTimeout}).Exchange(tc.q, s.Addr())
		if err != nil || resp.Rcode != dns.RcodeRefused || len(resp.Answer)+len(resp.Ns) != 0 {
			t.Errorf("%s over UDP: %v %v, want REFUSED and nothing else", tc.what, resp, err)
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the upstream was asked %d transfer queries, want 0", n)
	}
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return "error: " + err.Error()
}

// TestMetricsLint: the stub's metrics, dnsstub_tcp_refused_total among
// them, pass promtool's naming checks (counters end in _total, HELP set).
func TestMetricsLint(t *testing.T) {
	s, reg := startStub(t, dnsstub.Config{AnswerIPv4: []string{"10.10.10.10"}}, nil)
	// A query, so that the vectors have a child to show.
	if _, _, err := (&dns.Client{Timeout: testenv.WaitTimeout}).Exchange(new(dns.Msg).SetQuestion(zoneName, dns.TypeA), s.Addr()); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	mfs, _ := reg.Gather()
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "dnsstub_tcp_refused_total" {
			found = mf.GetHelp() != "" && mf.GetType().String() == "COUNTER"
		}
	}
	if !found {
		t.Error("no dnsstub_tcp_refused_total counter with HELP registered")
	}
}
