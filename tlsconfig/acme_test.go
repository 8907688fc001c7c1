package tlsconfig_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/pebbletest"
	"github.com/neo4j/private-ingress/tlsconfig"

	"github.com/neo4j/private-ingress/internal/testenv/loopback"
)

const wildcard = "*.production-orch-0000.neo4j.io"

// challengeDNS is the DNS server of the zone the challenge names are in,
// as much of one as certmagic and Pebble ask of it: the SOA at the apex
// (in the answer section: that is how certmagic finds the zone), NS, the
// TXT records the store publishes through it, NODATA or NXDOMAIN with the
// SOA for other names in the zone, REFUSED outside. It listens on one
// port for UDP and TCP (Pebble asks over TCP, several at once).
type challengeDNS struct {
	zone string // fully qualified, lower case
	addr string
	mu   sync.Mutex
	txt  map[string][]string // lower-case FQDN → values
}

var _ tlsconfig.ChallengePublisher = (*challengeDNS)(nil)

func startChallengeDNS(t *testing.T, zone string) *challengeDNS {
	t.Helper()
	d := &challengeDNS{zone: dns.CanonicalName(zone), txt: map[string][]string{}}
	var ln net.Listener
	var pc net.PacketConn
	for try := 1; ; try++ { // the TCP listener's port may be taken for UDP
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if pc, err = net.ListenPacket("udp", ln.Addr().String()); err == nil {
			break
		}
		ln.Close()
		if try == 10 {
			t.Fatal(err)
		}
	}
	d.addr = ln.Addr().String()
	for _, srv := range []*dns.Server{
		{Listener: ln, Handler: d, MaxTCPQueries: -1},
		{PacketConn: pc, Handler: d},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started // else Shutdown, at the end of the test, would find nothing to stop
		t.Cleanup(func() { srv.Shutdown() })
	}
	return d
}

func (d *challengeDNS) AddTXT(_ context.Context, name, value string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := dns.CanonicalName(name)
	if !slices.Contains(d.txt[k], value) {
		d.txt[k] = append(d.txt[k], value)
	}
	return nil
}

func (d *challengeDNS) RemoveTXT(_ context.Context, name, value string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := dns.CanonicalName(name)
	d.txt[k] = slices.DeleteFunc(d.txt[k], func(v string) bool { return v == value })
	if len(d.txt[k]) == 0 {
		delete(d.txt, k)
	}
	return nil
}

func (d *challengeDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	m.Authoritative = true
	q := r.Question[0]
	name := dns.CanonicalName(q.Name)
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 60}
	}
	soa := &dns.SOA{Hdr: hdr(dns.TypeSOA), Ns: "ns1." + d.zone, Mbox: "hostmaster." + d.zone,
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 60}
	soa.Hdr.Name = d.zone
	d.mu.Lock()
	values := slices.Clone(d.txt[name])
	d.mu.Unlock()
	switch {
	case !dns.IsSubDomain(d.zone, name):
		m.Authoritative = false
		m.Rcode = dns.RcodeRefused
	case name == d.zone && q.Qtype == dns.TypeSOA:
		m.Answer = append(m.Answer, soa)
	case name == d.zone && q.Qtype == dns.TypeNS:
		m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(dns.TypeNS), Ns: "ns1." + d.zone})
	case q.Qtype == dns.TypeTXT && len(values) > 0:
		for _, v := range values {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: []string{v}})
		}
	default:
		if name != d.zone && len(values) == 0 {
			m.Rcode = dns.RcodeNameError
		}
		m.Ns = append(m.Ns, soa)
	}
	w.WriteMsg(m)
}

// echoTLS serves cfg on loopback and echoes lines.
func echoTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	return loopback.EchoOn(t, tls.NewListener(loopback.Listen(t), cfg))
}

func dialLeaf(addr string, roots *x509.CertPool, mod func(*tls.Config)) (*tls.Conn, *x509.Certificate, error) {
	cfg := &tls.Config{ServerName: "abcd1234.production-orch-0000.neo4j.io", RootCAs: roots}
	if mod != nil {
		mod(cfg)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: testenv.WaitTimeout}, "tcp", addr, cfg)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	return c, c.ConnectionState().PeerCertificates[0], nil
}

func rsaOnlyTLS12(c *tls.Config) {
	c.MaxVersion = tls.VersionTLS12
	c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
}

// TestACMEWithPebble: a store with no certificate obtains the wildcard in
// both key types from a real ACME server over DNS-01 (the challenges
// published through challengeDNS), serves each to the clients that
// support it, and renews without cutting an open connection.
func TestACMEWithPebble(t *testing.T) {
	testenv.External(t) // before starting what Pebble needs
	zone := startChallengeDNS(t, "production-orch-0000.neo4j.io")
	pebble := pebbletest.Start(t, zone.addr)
	reg := prometheus.NewRegistry()
	store := tlsconfig.NewStore(zaptest.NewLogger(t), tlsconfig.NewMetrics(reg))
	t.Cleanup(store.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	err := store.ManageACME(ctx, tlsconfig.ACME{Directory: pebble.Directory, Email: "ops@example.com", CARoot: pebble.CAFile, Storage: t.TempDir()},
		tlsconfig.ACMEOptions{Names: []string{wildcard}, Publisher: zone, Resolver: zone.addr})
	if err != nil {
		t.Fatal(err)
	}
	addr := echoTLS(t, store.ServerConfig(nil))
	roots := pebble.Roots(t)

	waitForBothLeaves(t, reg, addr, roots)
	issued := 2.0
	if checkRenewalKeepsConnections(t, ctx, store, addr, roots) {
		issued += 2
	}
	checkCertificateMetrics(t, reg, issued)
}

// waitForBothLeaves waits until the store at addr serves an ECDSA leaf to
// TLS 1.3 clients and an RSA one to RSA-only TLS 1.2 clients.
func waitForBothLeaves(t *testing.T, reg *prometheus.Registry, addr string, roots *x509.CertPool) {
	// Both leaves arrive in the background: wait for certmagic to report
	// them obtained (cheap to look at), then for both to be served. It can
	// take a minute and a half, as certmagic retries a failed attempt
	// about a minute later.
	if !testenv.Poll(90*time.Second, func() bool { return renewals(t, reg, "ok") >= 2 }) {
		t.Fatalf("Pebble issued %v certificates (and %v attempts failed), want 2", renewals(t, reg, "ok"), renewals(t, reg, "error"))
	}
	var err13, err12 error
	var leaf13, leaf12 *x509.Certificate
	if !testenv.Poll(testenv.WaitTimeout, func() bool {
		var c13, c12 *tls.Conn
		c13, leaf13, err13 = dialLeaf(addr, roots, nil)
		c12, leaf12, err12 = dialLeaf(addr, roots, rsaOnlyTLS12)
		if err13 == nil {
			c13.Close()
		}
		if err12 == nil {
			c12.Close()
		}
		if err13 != nil || err12 != nil {
			return false
		}
		_, ecdsaLeaf := leaf13.PublicKey.(*ecdsa.PublicKey)
		return ecdsaLeaf
	}) {
		t.Fatalf("no ECDSA and RSA leaves served: TLS 1.3: %v, TLS 1.2: %v", err13, err12)
	}
	if _, ok := leaf12.PublicKey.(*rsa.PublicKey); !ok {
		t.Fatalf("an RSA-only TLS 1.2 client got a %T leaf", leaf12.PublicKey)
	}
}

// checkRenewalKeepsConnections: an open connection survives a forced
// renewal; new handshakes get the new certificate. It reports whether it
// renewed (see below for the runs where it can't).
func checkRenewalKeepsConnections(t *testing.T, ctx context.Context, store *tlsconfig.Store, addr string, roots *x509.CertPool) bool {
	open, before, err := dialLeaf(addr, roots, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	// Pebble keys a certificate's order by the hex of its serial's minimal
	// bytes, but the renewal-info (ARI) id certmagic sends holds the DER
	// serial, which gains a leading zero byte when the top bit is set. Its
	// serials are below 2^63, so that happens only for a short one (about
	// one certificate in 256), and Pebble then answers "could not find order
	// resulting in the given certificate serial number": its bug, not ours.
	// The renewal is not checked that run.
	_, rsaBefore, err := dialLeaf(addr, roots, rsaOnlyTLS12)
	if err != nil {
		t.Fatal(err)
	}
	for _, leaf := range []*x509.Certificate{before, rsaBefore} {
		if b := leaf.SerialNumber.Bytes(); len(b) > 0 && b[0]&0x80 != 0 {
			t.Logf("serial %x needs a leading zero in DER, which Pebble's ARI lookup misses; renewal not checked this run", leaf.SerialNumber)
			return false
		}
	}
	if err := store.RenewACME(ctx); err != nil {
		t.Fatalf("RenewACME: %v", err)
	}
	c, after, err := dialLeaf(addr, roots, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Errorf("the same certificate (serial %x) after a forced renewal", after.SerialNumber)
	}
	_, rsaAfter, err := dialLeaf(addr, roots, rsaOnlyTLS12)
	if err != nil {
		t.Fatalf("RSA after the renewal: %v", err)
	}
	if _, ok := rsaAfter.PublicKey.(*rsa.PublicKey); !ok {
		t.Errorf("the RSA leaf is gone after the renewal: %T", rsaAfter.PublicKey)
	}
	fmt.Fprintf(open, "still here\n")
	if line, err := bufio.NewReader(open).ReadString('\n'); err != nil || line != "still here\n" {
		t.Errorf("the connection opened before the renewal: %q, %v", line, err)
	}
	return true
}

// checkCertificateMetrics: the metrics say when each certificate expires,
// and count the issued certificates.
func checkCertificateMetrics(t *testing.T, reg *prometheus.Registry, issued float64) {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "ingress_certificate_renewals_total":
				if n := m.GetCounter().GetValue(); labels["result"] == "ok" && n < issued {
					t.Errorf("ingress_certificate_renewals_total{result=ok} = %v, want at least %v", n, issued)
				}
			case "ingress_certificate_expiry_timestamp_seconds":
				keys[labels["key"]] = labels["name"] == wildcard
				if exp := time.Unix(int64(m.GetGauge().GetValue()), 0); exp.Before(time.Now()) {
					t.Errorf("expiry %v is in the past", exp)
				}
			}
		}
	}
	if !keys["RSA-2048"] || !keys["ECDSA-P-256"] {
		t.Errorf("expiry series for %s by key %v, want RSA-2048 and ECDSA-P-256", wildcard, keys)
	}
}

// renewals is ingress_certificate_renewals_total{result}.
func renewals(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ingress_certificate_renewals_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
