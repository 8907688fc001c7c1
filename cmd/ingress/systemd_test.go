package main

// systemd: the unit in deploy/, and what a Type=notify unit hears from the
// real binary (sd_notify, -pidfile) across a SIGUSR2 hand-over.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/neo4j/private-ingress/internal/config"
	"github.com/neo4j/private-ingress/internal/testenv"
)

const unitPath = "../../deploy/ingress.service"

// readUnit parses a unit file into its settings by section and key, each
// key's values in order ("Section.Key").
func readUnit(t *testing.T, data []byte) map[string][]string {
	t.Helper()
	settings := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: %q: want Key=value in a section, on one line", unitPath, n, line)
			}
			settings[section+"."+strings.TrimSpace(k)] = append(settings[section+"."+strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return settings
}

// TestSystemdUnitSettings: deploy/ingress.service says what the ingress
// relies on: Type=notify with NotifyAccess=all (the new process of a
// hand-over is not the main PID when it sends READY=1), SIGHUP to reload,
// the PID file it passes to -pidfile, a stop timeout above the shutdown
// delay and the drain, and flags that serve takes.
func TestSystemdUnitSettings(t *testing.T) {
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	unit := readUnit(t, data)
	one := func(key string) string {
		t.Helper()
		if v := unit[key]; len(v) == 1 {
			return v[0]
		}
		t.Errorf("%s: %q, want exactly one value", key, unit[key])
		return ""
	}
	for key, want := range map[string]string{
		"Service.Type": "notify", "Service.NotifyAccess": "all", "Service.ExecReload": "/bin/kill -HUP $MAINPID",
		"Service.KillSignal": "SIGTERM", "Service.Restart": "on-failure", "Service.RuntimeDirectory": "ingress",
		"Service.AmbientCapabilities": "CAP_NET_BIND_SERVICE", "Service.NoNewPrivileges": "yes",
		"Service.ProtectSystem": "strict", "Service.ProtectHome": "yes", "Service.PrivateTmp": "yes",
	} {
		if got := one(key); got != want {
			t.Errorf("%s=%s, want %s", key, got, want)
		}
	}
	if u := one("Service.User"); u == "" || u == "root" || u == "0" {
		t.Errorf("User=%s: want a dedicated user", u)
	}
	if !slices.Contains(strings.Fields(one("Service.RestrictAddressFamilies")), "AF_UNIX") {
		t.Error("RestrictAddressFamilies without AF_UNIX: sd_notify could not reach NOTIFY_SOCKET")
	}
	if n, err := strconv.Atoi(one("Service.LimitNOFILE")); err != nil || n < 65536 {
		t.Errorf("LimitNOFILE=%d (%v): want one descriptor per connection and per backend, at least 65536", n, err)
	}

	argv := strings.Fields(one("Service.ExecStart"))
	if len(argv) < 2 || argv[0] != "/usr/local/bin/ingress" || argv[1] != "serve" {
		t.Fatalf("ExecStart=%q: want /usr/local/bin/ingress serve ...", argv)
	}
	// The flags are serve's: with -h appended they parse (exit 0, not 2)
	// without reading a config.
	if code, _, stderr := runInProcess(t, append(slices.Clone(argv[1:]), "-h")...); code != 0 {
		t.Errorf("ingress %s: exit %d: %s", strings.Join(argv[1:], " "), code, stderr)
	}
	flagValue := func(name string) string {
		if i := slices.Index(argv, "-"+name); i > 0 && i+1 < len(argv) {
			return argv[i+1]
		}
		return ""
	}
	if got := flagValue("config"); got != "/etc/ingress/ingress.yaml" {
		t.Errorf("ExecStart -config %q", got)
	}
	pidfile := flagValue("pidfile")
	if pidfile == "" || pidfile != one("Service.PIDFile") {
		t.Errorf("ExecStart -pidfile %q, PIDFile=%s: want the same file", pidfile, one("Service.PIDFile"))
	}
	if dir := filepath.Dir(pidfile); dir != "/run/"+one("Service.RuntimeDirectory") {
		t.Errorf("the PID file is in %s, not in the RuntimeDirectory the unit's user may write", dir)
	}

	cfg := deployConfig(t)
	stop, err := strconv.Atoi(one("Service.TimeoutStopSec"))
	if need := cfg.Ingress.Timeouts.ShutdownDelay + cfg.Ingress.Timeouts.Drain; err != nil || time.Duration(stop)*time.Second <= need {
		t.Errorf("TimeoutStopSec=%d (%v): want more than shutdown_delay + drain (%v) of deploy/ingress.yaml's config", stop, err, need)
	}
}

// deployConfig returns the production config: deploy/ingress.yaml's
// ConfigMap.
func deployConfig(t *testing.T) *config.Config {
	t.Helper()
	t.Setenv("POD_IP", "10.1.2.3")
	data, err := os.ReadFile("../../deploy/ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc deployDoc
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("deploy/ingress.yaml: no ConfigMap (%v)", err)
		}
		if doc.Kind == "ConfigMap" {
			cfg, err := config.Parse(filepath.Join(t.TempDir(), "ingress.yaml"), []byte(doc.Data["ingress.yaml"]))
			if err != nil {
				t.Fatal(err)
			}
			return cfg
		}
	}
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit, its
// ExecStart pointed at the freshly built binary (verify checks that the
// program exists): any warning fails, an unknown key included.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := testenv.Command(t, "systemd-analyze")
	bin := ingressBin.Path(t)
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "ingress.service")
	os.WriteFile(unit, bytes.ReplaceAll(data, []byte("ExecStart=/usr/local/bin/ingress "), []byte("ExecStart="+bin+" ")), 0o644)
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// notification is one datagram a fake systemd received, with its sender.
type notification struct {
	pid   int
	state string
}

// notifySocket is a fake systemd's NOTIFY_SOCKET: it records every
// datagram with the sender's PID, which the kernel attaches (SO_PASSCRED)
// as it does for systemd.
type notifySocket struct {
	path string
	mu   sync.Mutex
	got  []notification
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1) })
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf, oob := make([]byte, 4096), make([]byte, syscall.CmsgSpace(syscall.SizeofUcred))
		for {
			k, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			if err != nil {
				return // closed
			}
			pid := 0
			if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) == 1 {
				if cred, err := syscall.ParseUnixCredentials(&msgs[0]); err == nil {
					pid = int(cred.Pid)
				}
			}
			n.mu.Lock()
			n.got = append(n.got, notification{pid, string(buf[:k])})
			n.mu.Unlock()
		}
	}()
	return n
}

// from returns what pid has sent so far, in order.
func (n *notifySocket) from(pid int) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var states []string
	for _, m := range n.got {
		if m.pid == pid {
			states = append(states, m.state)
		}
	}
	return states
}

// waitFor waits until pid has sent state.
func (n *notifySocket) waitFor(t *testing.T, pid int, state string) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("%s from pid %d", state, pid), func() bool { return slices.Contains(n.from(pid), state) })
}

// sync waits until every datagram sent before it has been read: the
// socket's queue is in order, so once the test's own marker is read, so
// is whatever an exited process sent before it.
func (n *notifySocket) sync(t *testing.T) {
	t.Helper()
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("SYNC=1")); err != nil {
		t.Fatal(err)
	}
	n.waitFor(t, os.Getpid(), "SYNC=1")
	n.mu.Lock()
	n.got = slices.DeleteFunc(n.got, func(m notification) bool { return m.pid == os.Getpid() })
	n.mu.Unlock()
}

// readPID returns the PID the file names, or 0 if there is none.
func readPID(path string) int {
	data, _ := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSuffix(string(data), "\n"))
	return pid
}

// TestSystemdNotifyAcrossHandOver: with NOTIFY_SOCKET and -pidfile, what a
// Type=notify unit hears. The process sends READY=1 once it serves and
// writes its PID; a failed hand-over sends nothing and leaves the PID file
// alone; a successful one has the new process send READY=1 and rewrite
// the PID file, and the old one send MAINPID=<new> and leave without
// STOPPING=1 and without removing the file; SIGTERM to the new one sends
// STOPPING=1 and removes the file.
func TestSystemdNotifyAcrossHandOver(t *testing.T) {
	testenv.External(t)
	notify := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", notify.path)
	pidfile := filepath.Join(t.TempDir(), "ingress.pid")
	// startChaosIngress runs `serve -config FILE`: the wrapper adds -pidfile
	// and execs, so the PID stays the ingress's.
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), "timeouts: {drain: 2s}\n",
		"sh", "-c", `exec "$0" "$@" -pidfile '`+pidfile+`'`)
	oldPID := c.cmd.Process.Pid
	notify.waitFor(t, oldPID, "READY=1")
	if got := readPID(pidfile); got != oldPID {
		t.Fatalf("the PID file names %d once serving, want %d", got, oldPID)
	}

	good, err := os.ReadFile(filepath.Join(c.dir, "ingress.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c.setConfig("listeners: [\n") // not YAML: the new process exits at once
	c.cmd.Process.Signal(syscall.SIGUSR2)
	c.waitLog("hand-over failed; this process keeps serving")
	if got := readPID(pidfile); got != oldPID {
		t.Errorf("the PID file names %d after a failed hand-over, want %d", got, oldPID)
	}

	c.setConfig(string(good))
	c.cmd.Process.Signal(syscall.SIGUSR2)
	newPID := c.newPID()
	notify.waitFor(t, oldPID, "MAINPID="+strconv.Itoa(newPID))
	// The new process wrote the file before it told the old one it serves.
	if got := readPID(pidfile); got != newPID {
		t.Errorf("the PID file names %d once the new process serves, want %d", got, newPID)
	}
	notify.waitFor(t, newPID, "READY=1")
	c.waitExit(testenv.WaitTimeout, "the old process after the hand-over")
	notify.sync(t)
	if got, want := notify.from(oldPID), []string{"READY=1", "MAINPID=" + strconv.Itoa(newPID)}; !slices.Equal(got, want) {
		t.Errorf("the old process sent %q, want %q: nothing for the failed hand-over, no STOPPING=1 for the good one", got, want)
	}
	if got := readPID(pidfile); got != newPID {
		t.Errorf("the PID file names %d after the old process left, want %d", got, newPID)
	}

	syscall.Kill(newPID, syscall.SIGTERM)
	notify.waitFor(t, newPID, "STOPPING=1")
	testenv.WaitFor(t, "the new process to exit", func() bool { return gone(newPID) })
	notify.sync(t)
	if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the PID file is still there after the process it names stopped: %v", err)
	}
	if got, want := notify.from(newPID), []string{"READY=1", "STOPPING=1"}; !slices.Equal(got, want) {
		t.Errorf("the new process sent %q, want %q", got, want)
	}
}

// TestSystemdNotifyDNS: `ingress dns` speaks to systemd the same way.
func TestSystemdNotifyDNS(t *testing.T) {
	testenv.External(t)
	bin := ingressBin.Path(t)
	notify := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", notify.path)
	dir := t.TempDir()
	cfgPath, pidfile := filepath.Join(dir, "ingress.yaml"), filepath.Join(dir, "dns.pid")
	os.WriteFile(cfgPath, []byte(`orchestras: ["0000"]
admin: {address: "127.0.0.1:0"}
dns: {address: "127.0.0.1:0", answer_ipv4: ["10.10.10.10"]}
`), 0o644)
	cmd, logs, exited := runBinary(t, bin, "dns", "-config", cfgPath, "-pidfile", pidfile)
	pid := cmd.Process.Pid
	startedAddrs(t, logs.String)
	notify.waitFor(t, pid, "READY=1")
	if got := readPID(pidfile); got != pid {
		t.Errorf("the PID file names %d, want %d", got, pid)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if !testenv.Poll(testenv.WaitTimeout, func() bool { return len(exited) > 0 }) {
		t.Fatal("ingress dns did not stop on SIGTERM")
	}
	if err := <-exited; err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	notify.sync(t)
	if got, want := notify.from(pid), []string{"READY=1", "STOPPING=1"}; !slices.Equal(got, want) {
		t.Errorf("sent %q, want %q", got, want)
	}
	if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the PID file is still there after a clean exit: %v", err)
	}
}

// TestVersionOfTheBinary: the built binary's version line has its five
// fields: the link-time version, the VCS revision and time (or unknown
// for both, where the build recorded no VCS information), the Go version
// and the flavour.
func TestVersionOfTheBinary(t *testing.T) {
	testenv.External(t)
	bin := ingressBin.Path(t)
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(out))
	if len(fields) != 6 || fields[0] != "ingress" || fields[1] != "dev" || fields[5] != "pure-go" ||
		!strings.HasPrefix(fields[4], "go1.") || string(out) != strings.Join(fields, " ")+"\n" {
		t.Fatalf("ingress version: %q, want: ingress dev <revision> <vcs time> <go version> pure-go", out)
	}
	rev, when := fields[2], fields[3]
	if _, err := time.Parse(time.RFC3339, when); (rev == "unknown") != (when == "unknown") || when != "unknown" && err != nil ||
		rev != "unknown" && !regexp.MustCompile(`^[0-9a-f]{40}(\+dirty)?$`).MatchString(rev) {
		t.Errorf("revision %q, time %q: want a commit hash (+dirty) and its RFC 3339 time, or unknown for both", rev, when)
	}
}
