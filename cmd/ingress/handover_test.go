package main

// Hand-over (SIGUSR2) faults on the real binary: one that fails must leave
// the old process serving exactly as before, one that succeeds must pass
// every address on, and neither may leave the old process hung.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/neo4j/private-ingress/internal/testenv"
)

// handoverDNS is the config a hand-over test appends: the DNS stub on
// loopback, and drain timeout drain.
func handoverDNS(drain string) string {
	return fmt.Sprintf("timeouts: {drain: %s}\ndns: {address: \"127.0.0.1:0\", answer_ipv4: [\"127.0.0.1\"]}\n", drain)
}

// logLines returns the fields of every JSON log line whose msg starts
// with prefix, in order.
func (c *chaosIngress) logLines(prefix string) []map[string]any {
	var lines []map[string]any
	for line := range strings.Lines(c.logText()) {
		var fields map[string]any
		if json.Unmarshal([]byte(line), &fields) != nil {
			continue
		}
		if msg, _ := fields["msg"].(string); strings.HasPrefix(msg, prefix) {
			lines = append(lines, fields)
		}
	}
	return lines
}

// waitLog waits for a log line whose msg starts with prefix and returns
// its fields.
func (c *chaosIngress) waitLog(prefix string) map[string]any {
	c.t.Helper()
	var lines []map[string]any
	testenv.WaitFor(c.t, fmt.Sprintf("the log line %q", prefix), func() bool {
		lines = c.logLines(prefix)
		return len(lines) > 0
	})
	return lines[0]
}

// newPID waits for the old process's word that the new one serves and
// returns the new one's PID, killed when the test ends.
func (c *chaosIngress) newPID() int {
	c.t.Helper()
	pid := int(c.waitLog("the new process serves")["pid"].(float64))
	c.t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// setConfig replaces ingress.yaml the way config managers do.
func (c *chaosIngress) setConfig(body string) {
	c.t.Helper()
	writeRoutes(c.t, filepath.Join(c.dir, "ingress.yaml"), body)
}

// waitExit waits up to bound for the (old) process to exit, and fails the
// test if it does not or if it exits other than 0.
func (c *chaosIngress) waitExit(bound time.Duration, what string) {
	c.t.Helper()
	var err error
	exited := testenv.Poll(bound, func() bool {
		select {
		case err = <-c.exited:
			return true
		default:
			return false
		}
	})
	switch {
	case !exited:
		c.t.Fatalf("%s: the process did not exit within %v", what, bound)
	case err != nil:
		c.t.Errorf("%s: exit %v, want 0", what, err)
	}
}

// alive reports whether the process has not exited yet.
func (c *chaosIngress) alive() bool {
	select {
	case err := <-c.exited:
		c.exited <- err
		return false
	default:
		return true
	}
}

// socketFlags returns the open-file flags of every socket descriptor of
// process pid, by descriptor number.
func socketFlags(t *testing.T, pid int) map[string]int64 {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]int64{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(target, "socket:[") {
			continue // closed since, or not a socket
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(info)) {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				f, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
				if err != nil {
					t.Fatalf("fdinfo %s: %q: %v", e.Name(), line, err)
				}
				flags[e.Name()] = f
			}
		}
	}
	return flags
}

// probe GETs path on the admin address on a new connection each time, so
// that the kernel picks an accepting process every time; it returns the
// status and the body.
func probe(admin, path string) (int, string, error) {
	client := &http.Client{Timeout: testenv.WaitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + admin + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return resp.StatusCode, b.String(), sc.Err()
}

// TestFailedHandOverKeepsServing: a SIGUSR2 whose new process refuses the
// config leaves the old one serving exactly as before: its sockets stay
// non-blocking, DNS over UDP answers every single query at once, TLS
// still works, and SIGTERM still ends it within the drain timeout + 5 s.
func TestFailedHandOverKeepsServing(t *testing.T) {
	testenv.External(t)
	const drain = 2 * time.Second
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), handoverDNS(drain.String()))
	pid := c.cmd.Process.Pid
	c.setConfig("listeners: [\n") // not YAML: the new process exits at once
	c.cmd.Process.Signal(syscall.SIGUSR2)
	c.waitLog("hand-over failed; this process keeps serving")

	flags := socketFlags(t, pid)
	if len(flags) < 4 { // bolt, DNS over UDP and TCP, admin
		t.Errorf("%d sockets in /proc/%d/fd, want at least 4", len(flags), pid)
	}
	for fd, f := range flags {
		if f&syscall.O_NONBLOCK == 0 {
			t.Errorf("socket fd %s has flags %o: O_NONBLOCK is off", fd, f)
		}
	}

	client := &dns.Client{Net: "udp", Timeout: 2 * time.Second} // a failure bound: the stub answers in microseconds
	for i := range 5 {
		m := new(dns.Msg).SetQuestion("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA)
		r, _, err := client.Exchange(m, c.addrs["dns"])
		if err != nil {
			t.Fatalf("DNS query %d over UDP after the failed hand-over: %v", i+1, err)
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("DNS query %d: %v", i+1, r)
		}
	}
	if err := c.ping(); err != nil {
		t.Fatalf("TLS after the failed hand-over: %v", err)
	}
	if code := c.readyz(); code != 200 {
		t.Errorf("/readyz %d after the failed hand-over, want 200", code)
	}

	c.cmd.Process.Signal(syscall.SIGTERM)
	c.waitExit(drain+5*time.Second, "SIGTERM after a failed hand-over")
}

// TestHandOverPassesTheAdminAddress: once the new process serves, the old
// one no longer answers on the admin address (nor DNS) while it drains its
// own connection: every /readyz and /metrics answer comes from the new
// process. The bolt listener and the admin server share a configured
// address (127.0.0.1:0): each socket must reach its own part.
func TestHandOverPassesTheAdminAddress(t *testing.T) {
	testenv.External(t)
	// The drain timeout is a failure bound: the old process exits because
	// its connection closes.
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), handoverDNS("2m"))
	oldPID := c.cmd.Process.Pid
	held, err := c.dial("abcd1234")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	held.SetDeadline(time.Time{})
	fmt.Fprintf(held, "before\n")
	r := bufio.NewReader(held)
	if line, err := r.ReadString('\n'); err != nil || line != "before\n" {
		t.Fatalf("held connection: %q, %v", line, err)
	}
	const active = `ingress_active_connections{service="bolt"}`
	testenv.WaitFor(t, "the held connection to be counted", func() bool { return c.metric(active) == 1 })

	c.cmd.Process.Signal(syscall.SIGUSR2)
	newPID := c.newPID()
	testenv.WaitFor(t, "the new process's start-up line", func() bool { return len(c.logLines("ingress started")) == 2 })
	c.waitLog("draining after the hand-over")

	for i := range 40 {
		code, _, err := probe(c.admin, "/readyz")
		if err != nil || code != 200 {
			t.Fatalf("/readyz probe %d after the hand-over: %d, %v (the old, draining process answered?)", i+1, code, err)
		}
		code, body, err := probe(c.admin, "/metrics")
		if err != nil || code != 200 {
			t.Fatalf("/metrics probe %d after the hand-over: %d, %v", i+1, code, err)
		}
		if strings.Contains(body, active+" 1\n") {
			t.Fatalf("/metrics probe %d answered by the old process (it counts the held connection)", i+1)
		}
	}
	client := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	for i := range 5 {
		m := new(dns.Msg).SetQuestion("abcd1234.production-orch-0000.neo4j.io.", dns.TypeA)
		if _, _, err := client.Exchange(m, c.addrs["dns"]); err != nil {
			t.Fatalf("DNS query %d after the hand-over: %v", i+1, err)
		}
	}
	// The old process keeps no socket but its own connection's two.
	if n := len(socketFlags(t, oldPID)); n > 2 {
		t.Errorf("the old process holds %d sockets while draining, want 2 (its connection and the backend's)", n)
	}
	if !c.alive() {
		t.Fatal("the old process exited with a connection open")
	}
	// The held connection still works, then closes: the old process ends.
	fmt.Fprintf(held, "after\n")
	if line, err := r.ReadString('\n'); err != nil || line != "after\n" {
		t.Fatalf("held connection after the hand-over: %q, %v", line, err)
	}
	held.Close()
	c.waitExit(testenv.WaitTimeout, "the old process after its last connection")
	if err := c.ping(); err != nil {
		t.Errorf("the new process (pid %d) does not serve: %v", newPID, err)
	}
	syscall.Kill(newPID, syscall.SIGTERM)
}

// childOf returns the PID of a child process of ppid, or 0.
func childOf(ppid int) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so after the last ')'.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(ppid) {
			return pid
		}
	}
	return 0
}

// gone reports whether pid has exited (no such process, or a zombie).
func gone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}

// TestSIGTERMDuringHandOver: SIGTERM while the new process is still
// starting (here: stuck reading its config from a FIFO nobody writes)
// ends the old process within the drain timeout + 5 s, and the new one
// with it: it never served.
func TestSIGTERMDuringHandOver(t *testing.T) {
	testenv.External(t)
	const drain = 2 * time.Second
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), handoverDNS(drain.String()))
	fifo := filepath.Join(c.dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fifo, filepath.Join(c.dir, "ingress.yaml")); err != nil {
		t.Fatal(err)
	}
	c.cmd.Process.Signal(syscall.SIGUSR2)
	c.waitLog("SIGUSR2: starting a new process")
	var child int
	testenv.WaitFor(t, "the new process", func() bool { child = childOf(c.cmd.Process.Pid); return child != 0 })
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })

	c.cmd.Process.Signal(syscall.SIGTERM)
	c.waitExit(drain+5*time.Second, "SIGTERM during a hand-over")
	if !testenv.Poll(testenv.WaitTimeout, func() bool { return gone(child) }) {
		t.Errorf("the new process %d outlived the old one, which was told to stop before it served", child)
	}
	if lines := c.logLines("ingress started"); len(lines) != 1 {
		t.Errorf("%d start-up lines, want 1: the new process never served", len(lines))
	}
}

// TestHandOverToAProcessThatDies: a new process that dies right after it
// said it serves does not leave the old one hung: it still drains and
// exits within the drain timeout + 5 s.
func TestHandOverToAProcessThatDies(t *testing.T) {
	testenv.External(t)
	const drain = 2 * time.Second
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), handoverDNS(drain.String()))
	held, err := c.dial("abcd1234") // cut at the drain timeout
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	c.cmd.Process.Signal(syscall.SIGUSR2)
	newPID := c.newPID()
	if err := syscall.Kill(newPID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatal(err)
	}
	c.waitExit(drain+5*time.Second, "the old process after the new one died")
}
