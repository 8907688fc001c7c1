// Package knottest runs Knot DNS (knotd, Debian's knot, which .ci/run
// installs) on a loopback port for tests: the authority of one zone that
// takes RFC 2136 updates signed with a TSIG key of its own, as a
// production DNS authority takes ACME's challenges.
package knottest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/neo4j/private-ingress/internal/testenv"
)

// Knot is a running knotd, authoritative for Zone.
type Knot struct {
	Addr string // 127.0.0.1:port, UDP and TCP
	Zone string // fully qualified, lower case
	Key  Key    // the zone's ACL allows it to update the zone
	// Outsider is a key knotd knows (it verifies its signatures) but
	// that no ACL allows anything: what a key left out of the ACL meets.
	Outsider Key
	log      string // knotd's log file
}

// Key is a TSIG key as keymgr made it.
type Key struct {
	Name       string // fully qualified
	Algorithm  string // e.g. hmac-sha256
	Secret     string // base64
	SecretFile string // the secret alone, as tls.acme.rfc2136.tsig_secret_file takes it
}

// newKey has keymgr make a key and writes its secret file in dir.
func newKey(t testing.TB, keymgr, dir, name, algorithm string) Key {
	t.Helper()
	k := Key{Name: name, Algorithm: algorithm, SecretFile: filepath.Join(dir, name+"secret")}
	out, err := exec.Command(keymgr, "-t", name, algorithm).Output()
	if err != nil {
		t.Fatalf("keymgr -t %s %s: %v", name, algorithm, err)
	}
	for line := range strings.Lines(string(out)) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "secret:"); ok {
			k.Secret = strings.TrimSpace(s)
		}
	}
	if k.Secret == "" {
		t.Fatalf("no secret in keymgr's output:\n%s", out)
	}
	if err := os.WriteFile(k.SecretFile, []byte(k.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// command finds a Knot tool on the PATH or in /usr/sbin, where Debian
// puts it and where a non-root PATH may not look.
func command(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, name, "apt-get install knot")
	}
	return p
}

// pickPort picks the port Knot listens on; tests replace it.
var pickPort = freePort

// freePort picks a loopback port free for TCP and UDP (Knot binds both).
// Another process may take it before Knot binds it: Start then retries.
func freePort(t testing.TB) int {
	for try := 1; ; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
		if try == 10 {
			t.Fatal(err)
		}
	}
}

// startTries bounds the starts on fresh ports after one failed on a taken port.
const startTries = 5

// errPortTaken marks a start that failed because the port was taken
// between picking and binding it.
var errPortTaken = errors.New("the port knotd was to listen on was taken")

// Start runs knotd, authoritative for zone (e.g. "neo4j.io.", with an SOA
// and an NS at the apex and nothing else), until the test ends. Updates
// are allowed with a fresh TSIG key of algorithm (e.g. "hmac-sha256"). It
// is an external test's: the quick tier (-short) skips the test.
func Start(t testing.TB, zone, algorithm string) *Knot {
	t.Helper()
	testenv.External(t)
	knotd, keymgr := command(t, "knotd"), command(t, "keymgr")
	dir := t.TempDir()
	k := &Knot{
		Zone:     dns.CanonicalName(zone),
		Key:      newKey(t, keymgr, dir, "ingress-acme.", algorithm),
		Outsider: newKey(t, keymgr, dir, "outsider.", algorithm),
	}
	zoneFile := fmt.Sprintf("$ORIGIN %s\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.1\n", k.Zone)
	if err := errors.Join(
		os.Mkdir(filepath.Join(dir, "db"), 0o755), // knotd's journal and timers; it does not make it
		os.WriteFile(filepath.Join(dir, "zone"), []byte(zoneFile), 0o644),
	); err != nil {
		t.Fatal(err)
	}
	// The control socket's path must fit a sockaddr_un (108 bytes): a
	// short directory of its own, not the test's.
	rundir, err := os.MkdirTemp("", "knot")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rundir) })
	for try := 1; ; try++ {
		err := k.launch(t, knotd, dir, rundir, try)
		if err == nil {
			return k
		}
		if !errors.Is(err, errPortTaken) || try == startTries {
			t.Fatalf("knotd did not start: %v", err)
		}
		t.Logf("knotd did not start (%v); again on another port", err)
	}
}

// config is knotd's configuration: one zone, two keys, updates allowed
// with the first, the fewest threads.
func (k *Knot) config(dir, rundir string, port int) string {
	return fmt.Sprintf(`server:
    rundir: %q
    listen: 127.0.0.1@%d
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: %q
key:
  - id: %s
    algorithm: %s
    secret: %s
  - id: %s
    algorithm: %s
    secret: %s
acl:
  - id: acme-update
    key: %s
    action: update
zone:
  - domain: %s
    file: %q
    zonefile-sync: -1
    acl: acme-update
`, rundir, port, filepath.Join(dir, "db"), k.Key.Name, k.Key.Algorithm, k.Key.Secret,
		k.Outsider.Name, k.Outsider.Algorithm, k.Outsider.Secret, k.Key.Name, k.Zone, filepath.Join(dir, "zone"))
}

// launch runs knotd on a fresh port and waits until it answers for the
// zone, or exits: errPortTaken if its log says the port was in use.
func (k *Knot) launch(t testing.TB, knotd, dir, rundir string, try int) error {
	port := pickPort(t)
	conf := filepath.Join(dir, fmt.Sprintf("knot%d.conf", try))
	if err := os.WriteFile(conf, []byte(k.config(dir, rundir, port)), 0o644); err != nil {
		return err
	}
	k.log = filepath.Join(dir, fmt.Sprintf("knot%d.log", try))
	logs, err := os.Create(k.log)
	if err != nil {
		return err
	}
	cmd := exec.Command(knotd, "-c", conf)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		logs.Close()
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logs.Close(); close(exited) }()
	k.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	ready := testenv.WaitServing(exited, k.answersSOA)
	if errors.Is(ready, testenv.ErrExited) {
		out, _ := os.ReadFile(k.log)
		if line := testenv.AddrInUse(string(out)); line != "" {
			return fmt.Errorf("%w: %s", errPortTaken, line)
		}
		return fmt.Errorf("knotd exited: %v\n%s", cmd.ProcessState, out)
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM) // knotd flushes its databases and exits
		select {
		case <-exited:
		case <-time.After(testenv.WaitTimeout):
			cmd.Process.Kill()
			<-exited
		}
	}
	if ready != nil {
		stop()
		return ready
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			out, _ := os.ReadFile(k.log)
			t.Logf("knotd log:\n%s", out)
		}
	})
	return nil
}

// answersSOA asks for the zone's SOA: nil once knotd serves the zone. The
// timeout is short: knotd answers at once, and whatever holds the port
// while it does not (another program, on a taken port) may never answer.
func (k *Knot) answersSOA() error {
	r, err := k.query(k.Zone, dns.TypeSOA, 250*time.Millisecond)
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		return fmt.Errorf("SOA %s: %s, %d answers", k.Zone, dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	return nil
}

// Query asks knotd over TCP, unsigned, as a resolver would.
func (k *Knot) Query(name string, qtype uint16) (*dns.Msg, error) {
	return k.query(name, qtype, 5*time.Second)
}

func (k *Knot) query(name string, qtype uint16, timeout time.Duration) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.CanonicalName(name), qtype)
	m.RecursionDesired = false
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := &dns.Client{Net: "tcp"}
	r, _, err := c.ExchangeContext(ctx, m, k.Addr)
	return r, err
}

// TXT returns the TXT values knotd serves at name, failing t if it does
// not answer NOERROR or NXDOMAIN.
func (k *Knot) TXT(t testing.TB, name string) []string {
	t.Helper()
	r, err := k.Query(name, dns.TypeTXT)
	if err != nil {
		t.Fatalf("TXT %s: %v", name, err)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		t.Fatalf("TXT %s: %s", name, dns.RcodeToString[r.Rcode])
	}
	var values []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			values = append(values, strings.Join(txt.Txt, ""))
		}
	}
	return values
}

// Log returns what knotd has logged so far (every update it applies, as
// "DDNS").
func (k *Knot) Log(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(k.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
