package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/neo4j/private-ingress/internal/fleet"
	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/etcdtest"
	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// replica is one `ingress serve` of a fleet sharing etcd.
type replica struct {
	name, bolt, admin, config string
}

func (r replica) readyz() string {
	resp, err := http.Get("http://" + r.admin + "/readyz")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// TestFleetSharesRoutesThroughEtcd: two replicas follow one etcd. An
// instance put with `ingress routes put` becomes reachable through both,
// deleted it is refused by both; with etcd stopped both keep serving the
// last table and /readyz says it is stale; with etcd back they catch up.
// A TLS session made on one replica resumes on the other.
func TestFleetSharesRoutesThroughEtcd(t *testing.T) {
	testenv.External(t)
	f := startFleet(t)
	f.checkPutAndDelete()
	f.checkEtcdOutage()
}

// fleetHarness is two `ingress serve` replicas following one etcd, and a
// client that reaches instances through them.
type fleetHarness struct {
	t        *testing.T
	etcd     *etcdtest.Etcd
	bin, dir string
	backend  string // an echo server, the bolt backend of every instance
	replicas []replica
	roots    *x509.CertPool
	cache    tls.ClientSessionCache // shared by every connection
}

// startFleet starts etcd and two replicas following it, and waits until
// both are ready.
func startFleet(t *testing.T) *fleetHarness {
	t.Helper()
	etcd := etcdtest.Start(t)
	bin := ingressBin.Path(t)
	dir := t.TempDir()
	files, err := tlsconfig.WriteDevCerts(dir, []string{"*.production-orch-0000.neo4j.io"})
	if err != nil {
		t.Fatal(err)
	}
	backend := e2eEchoBackend(t)
	var replicas []replica
	for _, name := range []string{"a", "b"} {
		r := replica{name: name, config: filepath.Join(dir, name+".yaml")}
		os.WriteFile(r.config, []byte(fmt.Sprintf(`orchestras: ["0000"]
listeners: [{service: bolt, address: "127.0.0.1:0"}]
tls:
  certificates: [{cert: %q, key: %q}]
  session_tickets: {keys_file: "etcd:/ingress/tickets"}
routes: {etcd: {endpoints: [%q]}}
refusals: alert
admin: {address: "127.0.0.1:0"}
`, files.Cert, files.Key, etcd.Endpoint)), 0o644)
		_, logs, _ := runBinary(t, bin, "serve", "-config", r.config)
		addrs := startedAddrs(t, logs.String)
		r.bolt, r.admin = addrs["bolt"], addrs["admin"]
		replicas = append(replicas, r)
	}
	for _, r := range replicas {
		testenv.WaitFor(t, "replica "+r.name+" ready", func() bool { return strings.HasPrefix(r.readyz(), "200") })
	}
	caPEM, _ := os.ReadFile(files.CA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return &fleetHarness{
		t: t, etcd: etcd, bin: bin, dir: dir, backend: backend, replicas: replicas,
		roots: roots, cache: tls.NewLRUClientSessionCache(8),
	}
}

// reach echoes a line to dbid through replica r and reports whether the
// TLS session resumed.
func (f *fleetHarness) reach(r replica, dbid string) (resumed bool, err error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", r.bolt,
		&tls.Config{ServerName: dbid + ".production-orch-0000.neo4j.io", RootCAs: f.roots, ClientSessionCache: f.cache})
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	fmt.Fprintf(c, "hi\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hi\n" {
		return false, fmt.Errorf("echo %q: %v", line, err)
	}
	return c.ConnectionState().DidResume, nil
}

// routes runs `ingress routes args[0]` with the first replica's config
// and the rest of args, and returns its output.
func (f *fleetHarness) routes(args ...string) string {
	t := f.t
	t.Helper()
	out, err := exec.Command(f.bin, append([]string{"routes", args[0], "-config", f.replicas[0].config}, args[1:]...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ingress routes %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// checkPutAndDelete: an instance put is reachable through both replicas,
// a session made on one resumes on the other, and deleted the instance is
// refused by both.
func (f *fleetHarness) checkPutAndDelete() {
	t, replicas := f.t, f.replicas
	// Put: reachable through both.
	inst := filepath.Join(f.dir, "abcd1234.yaml")
	os.WriteFile(inst, []byte(fmt.Sprintf("dbid: abcd1234\norch: \"0000\"\npublic: true\nbackends: {bolt: [%q]}\n", f.backend)), 0o644)
	start := time.Now()
	f.routes("put", inst)
	for _, r := range replicas {
		testenv.WaitFor(t, "abcd1234 through replica "+r.name, func() bool { _, err := f.reach(r, "abcd1234"); return err == nil })
	}
	t.Logf("an etcd put reached both replicas %v after `ingress routes put` started", time.Since(start).Round(time.Millisecond))
	if out := f.routes("list"); !strings.Contains(out, "/ingress/routes/0000/abcd1234") {
		t.Errorf("routes list: %s", out)
	}

	// A session made on a resumes on b: the replicas share ticket keys
	// through etcd.
	f.reach(replicas[0], "abcd1234")
	if resumed, err := f.reach(replicas[1], "abcd1234"); err != nil || !resumed {
		t.Errorf("a session from replica a on replica b: resumed %v, %v", resumed, err)
	}

	// Delete: refused by both.
	f.routes("delete", "abcd1234")
	for _, r := range replicas {
		testenv.WaitFor(t, "abcd1234 refused by replica "+r.name, func() bool { _, err := f.reach(r, "abcd1234"); return err != nil })
	}
}

// checkEtcdOutage: with etcd gone the last table serves and readyz says
// stale; with etcd back both replicas catch up.
func (f *fleetHarness) checkEtcdOutage() {
	t, etcd, replicas, backend := f.t, f.etcd, f.replicas, f.backend
	// etcd gone: the last table serves and readyz says stale.
	cli := etcd.Client()
	ctx := context.Background()
	src := routing.Key("/ingress/routes/", "0000", "ef567890")
	cli.Put(ctx, src, fmt.Sprintf(`{"dbid": "ef567890", "orch": "0000", "public": true, "backends": {"bolt": [%q]}}`, backend))
	cli.Close()
	for _, r := range replicas {
		testenv.WaitFor(t, "ef567890 through replica "+r.name, func() bool { _, err := f.reach(r, "ef567890"); return err == nil })
	}
	etcd.Stop()
	for _, r := range replicas {
		testenv.WaitFor(t, "replica "+r.name+" to report stale routes", func() bool { return strings.Contains(r.readyz(), "routes stale") })
		if _, err := f.reach(r, "ef567890"); err != nil {
			t.Errorf("replica %s with etcd down: %v", r.name, err)
		}
	}

	// etcd back: both catch up.
	etcd.Restart()
	store := fleet.Store{Client: etcd.Client()}
	defer store.Client.Close()
	store.Client.Put(ctx, routing.Key("/ingress/routes/", "0000", "back1234"), fmt.Sprintf(`{"dbid": "back1234", "orch": "0000", "public": true, "backends": {"bolt": [%q]}}`, backend))
	for _, r := range replicas {
		testenv.WaitFor(t, "back1234 through replica "+r.name, func() bool { _, err := f.reach(r, "back1234"); return err == nil })
		testenv.WaitFor(t, "replica "+r.name+" fresh again", func() bool { return !strings.Contains(r.readyz(), "stale") })
	}
}

// TestRoutesPutRefusesBadInstances: nothing is written when a file is
// wrong, and the error names the file and line.
func TestRoutesPutRefusesBadInstances(t *testing.T) {
	testenv.External(t)
	etcd := etcdtest.Start(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ingress.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("orchestras: [\"0000\"]\ntls: {certificates: [{cert: a.crt, key: a.key}]}\nroutes: {etcd: {endpoints: [%q]}}\n", etcd.Endpoint)), 0o644)
	good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("dbid: good0001\norch: \"0000\"\nbackends: {bolt: [\"127.0.0.1:1\"]}\n"), 0o644)
	os.WriteFile(bad, []byte("dbid: bad00001\norch: \"0000\"\nbackends:\n  bolt: [\"no-port\"]\n"), 0o644)
	code, _, stderr := runInProcess(t, "routes", "put", "-config", cfg, good, bad)
	if code != 1 || !strings.Contains(stderr, bad+":4: backend \"no-port\": no port (want host:port)") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	c := etcd.Client()
	defer c.Close()
	if resp, err := c.Get(context.Background(), "/ingress/routes/", clientv3.WithPrefix()); err != nil || resp.Count != 0 {
		t.Errorf("keys written despite the bad file: %v, %v", resp, err)
	}
}
