package dnsstub_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/routing"
)

var ns = routing.Namespace{Domain: "neo4j.io", Orchestras: []string{"0000"}}

func routesTable(t *testing.T, dbids ...string) *routing.Table {
	t.Helper()
	var b strings.Builder
	b.WriteString("instances:\n")
	for _, id := range dbids {
		fmt.Fprintf(&b, "  - {dbid: %s, orch: \"0000\", public: true}\n", id)
	}
	table, err := routing.Parse("routes.yaml", []byte(b.String()), ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

func startStub(t *testing.T, cfg dnsstub.Config, routes *routing.Holder) (*dnsstub.Server, *prometheus.Registry) {
	t.Helper()
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1:0"
	}
	if cfg.TTL == 0 {
		cfg.TTL = 60
	}
	reg := prometheus.NewRegistry()
	s := dnsstub.New(dnsstub.Options{Config: cfg, Namespace: ns, Routes: routes, Registry: reg})
	if err := s.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
		defer cancel()
		s.Shutdown(ctx)
		<-done
	})
	return s, reg
}

// dig runs the real dig against the stub and returns its output.
func dig(t *testing.T, s *dnsstub.Server, args ...string) string {
	t.Helper()
	path := testenv.Command(t, "dig")
	host, port, _ := strings.Cut(s.Addr(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, append([]string{"@" + host, "-p", port, "+tries=1", "+time=5"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestDig(t *testing.T) {
	testenv.Command(t, "dig") // the counts below need every query asked
	var routes routing.Holder
	routes.Store(routesTable(t, "abcd1234"))
	var many []string
	for i := range 60 {
		many = append(many, fmt.Sprintf("10.1.0.%d", i+1))
	}
	s, reg := startStub(t, dnsstub.Config{AnswerIPv4: []string{"10.10.10.10"}}, &routes)
	big, _ := startStub(t, dnsstub.Config{AnswerIPv4: many}, nil)
	for _, tc := range []struct {
		name string
		srv  *dnsstub.Server
		args []string
		want []string // substrings of dig's output
	}{
		{"A for a random dbid", s, []string{"q7x9z2k1.production-orch-0000.neo4j.io"},
			[]string{"status: NOERROR", "flags: qr aa", "q7x9z2k1.production-orch-0000.neo4j.io. 60 IN A\t10.10.10.10"}},
		{"upper-case name", s, []string{"ABCD1234.PRODUCTION-ORCH-0000.NEO4J.IO"},
			[]string{"status: NOERROR", "ABCD1234.PRODUCTION-ORCH-0000.NEO4J.IO. 60 IN A 10.10.10.10"}},
		{"AAAA NODATA", s, []string{"abcd1234.production-orch-0000.neo4j.io", "AAAA"},
			[]string{"status: NOERROR", "ANSWER: 0", "AUTHORITY: 1", "IN\tSOA\tns1.production-orch-0000.neo4j.io."}},
		{"apex SOA", s, []string{"production-orch-0000.neo4j.io", "SOA"},
			[]string{"ANSWER: 1", "production-orch-0000.neo4j.io. 60 IN\tSOA\tns1.production-orch-0000.neo4j.io. hostmaster."}},
		{"apex NS", s, []string{"production-orch-0000.neo4j.io", "NS"},
			[]string{"production-orch-0000.neo4j.io. 60 IN\tNS\tns1.production-orch-0000.neo4j.io.", "ns1.production-orch-0000.neo4j.io. 60 IN A 10.10.10.10"}},
		{"outside name refused", s, []string{"www.example.com"}, []string{"status: REFUSED"}},
		{"TCP", s, []string{"+tcp", "abcd1234.production-orch-0000.neo4j.io"},
			[]string{"status: NOERROR", "(TCP)", "IN A\t10.10.10.10"}},
		{"small EDNS buffer sets TC", big, []string{"+bufsize=512", "+ignore", "abcd1234.production-orch-0000.neo4j.io"},
			[]string{"flags: qr aa tc", "udp: 512"}},
		{"TC then TCP gets everything", big, []string{"+bufsize=512", "abcd1234.production-orch-0000.neo4j.io"},
			[]string{"Truncated, retrying in TCP mode", "ANSWER: 60"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := normalize(dig(t, tc.srv, tc.args...))
			for _, w := range tc.want {
				if !strings.Contains(out, normalize(w)) {
					t.Errorf("dig output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if n := testutil.ToFloat64(mustCounter(t, reg, "A", "NOERROR")); n != 3 {
		t.Errorf("dnsstub_queries_total{qtype=A,rcode=NOERROR} = %v, want 3 (random dbid, upper case, TCP)", n)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, qtype, rcode string) prometheus.Collector {
	t.Helper()
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "dnsstub_queries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["qtype"] == qtype && labels["rcode"] == rcode {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
				c.Add(m.GetCounter().GetValue())
				return c
			}
		}
	}
	t.Fatalf("no dnsstub_queries_total{qtype=%q,rcode=%q}", qtype, rcode)
	return nil
}

// normalize folds the whitespace dig uses between columns.
func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestKnownOnlyFollowsRouteReloads(t *testing.T) {
	var routes routing.Holder
	routes.Store(routesTable(t, "abcd1234", "ef567890"))
	s, _ := startStub(t, dnsstub.Config{AnswerIPv4: []string{"10.10.10.10"}, KnownOnly: true}, &routes)
	ask := func(dbid string) *dns.Msg {
		t.Helper()
		q := new(dns.Msg)
		q.SetQuestion(dbid+".production-orch-0000.neo4j.io.", dns.TypeA)
		resp, _, err := (&dns.Client{Net: "tcp", Timeout: testenv.WaitTimeout}).Exchange(q, s.Addr())
		if err != nil {
			t.Fatalf("%s: %v", dbid, err)
		}
		return resp
	}
	if resp := ask("ef567890"); resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
		t.Fatalf("known dbid:\n%s", resp)
	}
	routes.Store(routesTable(t, "abcd1234")) // a reload removes ef567890
	resp := ask("ef567890")
	if resp.Rcode != dns.RcodeNameError || len(resp.Ns) != 1 || resp.Ns[0].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("removed dbid: want NXDOMAIN with the SOA:\n%s", resp)
	}
	if resp := ask("abcd1234"); resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
		t.Fatalf("kept dbid:\n%s", resp)
	}
}

func TestForwarding(t *testing.T) {
	// An upstream resolver on loopback that knows one name.
	up := &dns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		rr, _ := dns.NewRR("www.example.com. 300 IN A 192.0.2.7")
		m.Answer = append(m.Answer, rr)
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	up.NotifyStartedFunc = func() { close(started) }
	go up.ListenAndServe()
	<-started
	t.Cleanup(func() { up.Shutdown() })

	s, _ := startStub(t, dnsstub.Config{AnswerIPv4: []string{"10.10.10.10"}, Forward: []string{up.PacketConn.LocalAddr().String()}}, nil)
	c := &dns.Client{Timeout: testenv.WaitTimeout}
	q := new(dns.Msg)
	q.SetQuestion("www.example.com.", dns.TypeA)
	resp, _, err := c.Exchange(q, s.Addr())
	if err != nil || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
		t.Fatalf("forwarded: %v %v", resp, err)
	}

	dead, _ := startStub(t, dnsstub.Config{AnswerIPv4: []string{"10.10.10.10"}, Forward: []string{"127.0.0.1:1"}}, nil)
	resp, _, err = c.Exchange(q, dead.Addr())
	if err != nil || resp.Rcode != dns.RcodeServerFailure {
		t.Fatalf("upstream down: %v %v, want SERVFAIL", resp, err)
	}
	// Names in the zone are still answered without asking upstream.
	q.SetQuestion("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA)
	if resp, _, err = c.Exchange(q, dead.Addr()); err != nil || len(resp.Answer) != 1 {
		t.Fatalf("zone name with a dead upstream: %v %v", resp, err)
	}
}

func TestMalformedAndPipelined(t *testing.T) {
	s, _ := startStub(t, dnsstub.Config{AnswerIPv4: []string{"10.10.10.10"}}, nil)
	c := &dns.Client{Net: "tcp", Timeout: testenv.WaitTimeout}
	conn, err := c.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// More than miekg/dns's default of 128 queries on one TCP connection.
	for i := range 300 {
		q := new(dns.Msg)
		q.SetQuestion(fmt.Sprintf("db%d.production-orch-0000.neo4j.io.", i), dns.TypeA)
		if err := conn.WriteMsg(q); err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		resp, err := conn.ReadMsg()
		if err != nil || len(resp.Answer) != 1 {
			t.Fatalf("query %d on one TCP connection: %v %v", i, resp, err)
		}
	}
	// Two questions: FORMERR, and the server lives on.
	q := new(dns.Msg)
	q.SetQuestion("a.production-orch-0000.neo4j.io.", dns.TypeA)
	q.Question = append(q.Question, q.Question[0])
	resp, _, err := (&dns.Client{Timeout: testenv.WaitTimeout}).Exchange(q, s.Addr())
	if err != nil || resp.Rcode != dns.RcodeFormatError {
		t.Fatalf("two questions: %v %v, want FORMERR", resp, err)
	}
}

// TestForwardingDoesNotStallTheZone: a black-holed upstream holds its
// forwarded query until the timeout, and the zone is answered meanwhile.
func TestForwardingDoesNotStallTheZone(t *testing.T) {
	hole, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	s, _ := startStub(t, dnsstub.Config{AnswerIPv4: []string{"10.10.10.10"}, Forward: []string{hole.LocalAddr().String()}}, nil)
	c, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	send := func(id uint16, name string) {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		q.Id = id
		b, _ := q.Pack()
		c.Write(b)
	}
	// In one batch, most likely: the forward first, then the zone name.
	send(1, "www.example.com.")
	send(2, "abcd1234.production-orch-0000.neo4j.io.")
	var order []uint16
	for len(order) < 2 {
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("reading answers %v: %v", order, err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		order = append(order, m.Id)
		if m.Id == 1 && m.Rcode != dns.RcodeServerFailure {
			t.Errorf("the black-holed forward: %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
		}
	}
	if order[0] != 2 {
		t.Errorf("answers came as %v: the zone waited for the upstream", order)
	}
}

// TestDialAddr: the stub's own address, as the ACME solver's propagation
// checks dial it.
func TestDialAddr(t *testing.T) {
	s, _ := startStub(t, dnsstub.Config{AnswerIPv4: []string{"10.10.10.10"}}, nil)
	if got := s.DialAddr(); got != s.Addr() {
		t.Errorf("DialAddr() = %q, want the bound %q", got, s.Addr())
	}
}

// TestShutdownBeforeServe: a SIGTERM at start-up can shut the stub down
// before its Serve goroutine has run; Serve must still return.
func TestShutdownBeforeServe(t *testing.T) {
	s := dnsstub.New(dnsstub.Options{Config: dnsstub.Config{Address: "127.0.0.1:0", AnswerIPv4: []string{"10.10.10.10"}, TTL: 60}, Namespace: ns})
	if err := s.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown before Serve: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	select {
	case <-done:
	case <-time.After(testenv.WaitTimeout): // a failure bound
		t.Fatal("Serve did not return after Shutdown")
	}
}
