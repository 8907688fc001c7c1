package ingress_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/routing"
)

// withRevokeAfter sets routes.revoke_after.
func withRevokeAfter(d time.Duration) envOption {
	return func(s *envSetup) { s.RevokeAfter = d }
}

// withTrustedLB believes PROXY headers from loopback; the backends get none.
func withTrustedLB(s *envSetup) {
	s.ProxyProtocol = ingress.ProxyProtocolConfig{Mode: "optional", TrustedCIDRs: []string{"127.0.0.0/8"}}
}

// reload publishes routesYAML as the new table and tells the server, as the
// process does after every reload of the file or of etcd.
func (e *env) reload(routesYAML string) {
	e.t.Helper()
	table, err := routing.Parse("routes.yaml", []byte(routesYAML), ns, e.routes.Load())
	if err != nil {
		e.t.Fatal(err)
	}
	e.routes.Store(table)
	e.srv.RoutesChanged()
}

// revokedCount returns ingress_connections_revoked_total for service.
func (e *env) revokedCount(service string) float64 {
	return counterValue(e.t, e.reg, "ingress_connections_revoked_total", map[string]string{"service": service})
}

// waitClosed waits for the ingress to close c: a read ends (EOF) instead of
// timing out after WaitTimeout.
func waitClosed(t *testing.T, what string, c *tls.Conn, r *bufio.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testenv.WaitTimeout))
	line, err := r.ReadString('\n')
	switch {
	case err == nil:
		t.Fatalf("%s: read %q, want the connection closed", what, line)
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("%s: still open after %v", what, testenv.WaitTimeout)
	}
}

// echoes proves c open: a line sent comes back.
func echoes(t *testing.T, what string, c *tls.Conn, r *bufio.Reader) {
	t.Helper()
	c.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	fmt.Fprintf(c, "still there?\n")
	if line, err := r.ReadString('\n'); err != nil || line != "still there?\n" {
		t.Fatalf("%s: echo %q, %v; want the connection open", what, line, err)
	}
}

// revokedLine finds the log line of a connection to dbid closed as revoked.
func (e *env) revokedLine(dbid string) map[string]any {
	for _, entry := range e.logs.FilterMessage("connection").All() {
		if m := entry.ContextMap(); m["result"] == "revoked" && m["dbid"] == dbid {
			return m
		}
	}
	return nil
}

// waitRevoked waits for the connection to dbid to be counted and logged
// as revoked, the count at want.
func (e *env) waitRevoked(service, dbid string, want float64, reason string) {
	e.t.Helper()
	e.waitCount(service, "revoked", want)
	if got := e.revokedCount(service); got != want {
		e.t.Errorf("ingress_connections_revoked_total{service=%q} = %v, want %v", service, got, want)
	}
	m := e.revokedLine(dbid)
	if m == nil {
		e.t.Fatalf("no connection log line with result=revoked for %s", dbid)
	}
	if r, _ := m["reason"].(string); !strings.Contains(r, reason) {
		e.t.Errorf("revoked log line's reason %q, want it to say %q", r, reason)
	}
}

const revokeRoutes = `
instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {bolt: [%[1]q]}}
  - {dbid: ef567890, orch: "0000", public: true, backends: {bolt: [%[1]q]}}
`

// (a) An open connection to an instance no longer public is closed
// revoke_after after the reload.
func TestRevokedWhenNoLongerPublic(t *testing.T) {
	a := startBackend(t, "a")
	routes := fmt.Sprintf(revokeRoutes, a.addr())
	const grace = 200 * time.Millisecond
	e := startEnv(t, routes, withRevokeAfter(grace))
	c, r, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	defer c.Close()
	other, otherR, _ := e.mustGreet("bolt", fqdn("ef567890"))
	defer other.Close()

	reloaded := time.Now()
	e.reload(strings.Replace(routes, "{dbid: abcd1234, orch: \"0000\", public: true", "{dbid: abcd1234, orch: \"0000\", public: false", 1))
	waitClosed(t, "the connection to the instance no longer public", c, r)
	if d := time.Since(reloaded); d < grace {
		t.Errorf("closed %v after the reload, before revoke_after (%v)", d, grace)
	}
	e.waitRevoked("bolt", "abcd1234", 1, "no longer public")
	echoes(t, "the connection to the instance still public", other, otherR)
	if m := e.revokedLine("abcd1234"); m["bytes_in"] == nil {
		t.Errorf("the revoked log line has no byte counts: %v", m)
	}
}

// (b) An open connection to an instance removed is closed; 0s (at once).
func TestRevokedWhenInstanceRemoved(t *testing.T) {
	a := startBackend(t, "a")
	e := startEnv(t, fmt.Sprintf(revokeRoutes, a.addr()), withRevokeAfter(ingress.RevokeAtOnce))
	c, r, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	defer c.Close()
	other, otherR, _ := e.mustGreet("bolt", fqdn("ef567890"))
	defer other.Close()

	e.reload(fmt.Sprintf("instances:\n  - {dbid: ef567890, orch: \"0000\", public: true, backends: {bolt: [%q]}}\n", a.addr()))
	waitClosed(t, "the connection to the removed instance", c, r)
	e.waitRevoked("bolt", "abcd1234", 1, "no longer in the routing table")
	echoes(t, "the connection to the instance still there", other, otherR)
}

// (c) An endpoint removed from an instance's list: its connection is
// closed, another endpoint's connection to the same instance stays.
func TestRevokedWhenEndpointRemoved(t *testing.T) {
	backend := ppBackend(t, "b")
	const routes = `
instances:
  - {dbid: awsdb001, orch: "0000", public: false, endpoints: [%[2]s], backends: {bolt: [%[1]q]}}
`
	const gone, kept = "vpce-0a1b2c3d4e5f6a7b8", "vpce-0f0e0d0c0b0a09080"
	e := startEnv(t, fmt.Sprintf(routes, backend, gone+", "+kept), withProxy("optional", "127.0.0.0/8"), withRevokeAfter(200*time.Millisecond))
	dial := func(endpoint string) (*tls.Conn, *bufio.Reader) {
		c, r, err := e.dialVia("bolt", fqdn("awsdb001"), mustFormat(t, header(t, awsTLV(endpoint))))
		if err != nil {
			t.Fatalf("through %s: %v", endpoint, err)
		}
		if line, err := r.ReadString('\n'); err != nil || !strings.Contains(line, endpoint) {
			t.Fatalf("greeting through %s: %q, %v", endpoint, line, err)
		}
		return c, r
	}
	c, r := dial(gone)
	defer c.Close()
	stays, staysR := dial(kept)
	defer stays.Close()

	e.reload(fmt.Sprintf(routes, backend, kept))
	waitClosed(t, "the connection through the endpoint removed", c, r)
	e.waitRevoked("bolt", "awsdb001", 1, "endpoint is no longer in the instance's list")
	if m := e.revokedLine("awsdb001"); m["endpoint"] != gone {
		t.Errorf("the revoked log line names endpoint %v, want %s", m["endpoint"], gone)
	}
	echoes(t, "the connection through the endpoint still listed", stays, staysR)
}

// (d) A reload that changes nothing a connection's access depends on
// (another instance added, backends changed) closes nothing. A second
// reload revokes a third connection: once it is closed, the first
// reload's grace is over too.
func TestRevokeNothingWhenAccessKept(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	const routes = `
instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {bolt: [%[1]q]}}
  - {dbid: ef567890, orch: "0000", public: false, endpoints: [vpce-0a1b2c3d4e5f6a7b8], backends: {bolt: [%[1]q]}}
  - {dbid: control1, orch: "0000", public: true, backends: {bolt: [%[1]q]}}
`
	e := startEnv(t, fmt.Sprintf(routes, a.addr()), withTrustedLB, withRevokeAfter(200*time.Millisecond))
	public, publicR, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	defer public.Close()
	private, privateR, err := e.dialVia("bolt", fqdn("ef567890"), mustFormat(t, header(t, awsTLV("vpce-0a1b2c3d4e5f6a7b8"))))
	if err != nil {
		t.Fatal(err)
	}
	defer private.Close()
	privateR.ReadString('\n')
	control, controlR, _ := e.mustGreet("bolt", fqdn("control1"))
	defer control.Close()

	// Backends changed, an instance added, the endpoint list the same.
	changed := fmt.Sprintf(routes, b.addr()) + fmt.Sprintf("  - {dbid: new00001, orch: \"0000\", public: true, backends: {bolt: [%q]}}\n", b.addr())
	e.reload(changed)
	e.reload(strings.Replace(changed, "{dbid: control1, orch: \"0000\", public: true", "{dbid: control1, orch: \"0000\", public: false", 1))
	waitClosed(t, "the control connection", control, controlR)
	e.waitRevoked("bolt", "control1", 1, "no longer public")

	echoes(t, "the public connection", public, publicR)
	echoes(t, "the private connection", private, privateR)
	fresh, _, greeting := e.mustGreet("bolt", fqdn("abcd1234"))
	fresh.Close()
	if greeting != "hello b" {
		t.Errorf("a new connection after the reload greets %q, want the new backend", greeting)
	}
}

// (e) Access revoked, then given back before the grace ends: the
// connection stays. A connection revoked by the same reload and not given
// back marks the end of the grace.
func TestRevokeNotWhenGivenBackInTime(t *testing.T) {
	a := startBackend(t, "a")
	routes := fmt.Sprintf(revokeRoutes, a.addr())
	const grace = 2 * time.Second
	e := startEnv(t, routes, withRevokeAfter(grace))
	c, r, _ := e.mustGreet("bolt", fqdn("abcd1234"))
	defer c.Close()
	control, controlR, _ := e.mustGreet("bolt", fqdn("ef567890"))
	defer control.Close()

	start := time.Now()
	e.reload(strings.ReplaceAll(routes, "public: true", "public: false"))
	e.reload(strings.Replace(routes, "{dbid: ef567890, orch: \"0000\", public: true", "{dbid: ef567890, orch: \"0000\", public: false", 1))
	if d := time.Since(start); d >= grace/2 {
		t.Skipf("two reloads took %v, too close to the grace (%v) to tell anything", d, grace)
	}
	waitClosed(t, "the control connection, not given back", control, controlR)
	e.waitRevoked("bolt", "ef567890", 1, "no longer public")
	echoes(t, "the connection given back its access", c, r)
	if m := e.revokedLine("abcd1234"); m != nil {
		t.Errorf("the connection given back its access was logged revoked: %v", m)
	}
}

// (f) revoke_after -1s: never closed. The same reload on an ingress with
// a grace closes its connection; by then nothing is pending here.
func TestRevokeNever(t *testing.T) {
	a := startBackend(t, "a")
	routes := fmt.Sprintf(revokeRoutes, a.addr())
	never := startEnv(t, routes, withRevokeAfter(ingress.RevokeNever), withAlerts)
	graced := startEnv(t, routes, withRevokeAfter(200*time.Millisecond))
	c, r, _ := never.mustGreet("bolt", fqdn("abcd1234"))
	defer c.Close()
	control, controlR, _ := graced.mustGreet("bolt", fqdn("abcd1234"))
	defer control.Close()

	revoking := strings.ReplaceAll(routes, "public: true", "public: false")
	never.reload(revoking)
	graced.reload(revoking)
	waitClosed(t, "the connection with a grace", control, controlR)
	echoes(t, "the connection with revoke_after -1s", c, r)
	if got := never.revokedCount("bolt"); got != 0 {
		t.Errorf("ingress_connections_revoked_total = %v with revoke_after -1s", got)
	}
	if n := never.logs.FilterMessageSnippet("revoked").Len(); n != 0 {
		t.Errorf("%d log lines about revocations with revoke_after -1s", n)
	}
	if _, err := never.dial("bolt", fqdn("abcd1234")); err == nil {
		t.Error("a new connection was let in after public was turned off")
	}
}

// The result label and the counter exist before anything is revoked.
func TestRevokedMetricsPresentFromTheStart(t *testing.T) {
	e := startEnv(t, "instances: []\n")
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var counter, label bool
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if mf.GetName() == "ingress_connections_total" && lp.GetName() == "result" && lp.GetValue() == "revoked" {
					label = true
				}
			}
		}
		if mf.GetName() == "ingress_connections_revoked_total" && len(mf.GetMetric()) == int(routing.NumServices) {
			counter = true
		}
	}
	if !label || !counter {
		t.Errorf("result=\"revoked\" present: %v; ingress_connections_revoked_total for every service: %v", label, counter)
	}
}
