package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/demo"
	"github.com/neo4j/private-ingress/internal/testenv"
)

// startDemo runs `ingress demo` in-process on ephemeral loopback ports and
// returns its addresses and what it printed.
func startDemo(t *testing.T) (addrs map[string]string, printed string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan map[string]string, 1)
	done := make(chan error, 1)
	any := "127.0.0.1:0"
	var out, logs lockedBuffer
	go func() {
		done <- runDemo(ctx, demoOptions{
			Dir:    t.TempDir(),
			Ports:  demo.Ports{HTTPS: any, Bolt: any, HTTP: any, Arrow: any, Admin: any, DNS: any},
			Stdout: &out, Stderr: &logs,
			Ready: func(a map[string]string) { ready <- a },
		})
	}()
	stopped := false
	t.Cleanup(func() {
		cancel()
		if !stopped {
			<-done
		}
		if t.Failed() {
			t.Logf("demo log:\n%s", logs.String())
		}
	})
	select {
	case a := <-ready:
		return a, out.String()
	case err := <-done:
		stopped = true
		t.Fatalf("demo stopped: %v\n%s", err, logs.String())
	case <-time.After(testenv.WaitTimeout): // a failure bound
		t.Fatal("demo did not start")
	}
	return nil, ""
}

// TestDemoPrintedCommandsWork pastes every command `ingress demo` prints
// into a shell, as a newcomer would, and checks what each one shows.
func TestDemoPrintedCommandsWork(t *testing.T) {
	for _, tool := range []string{"bash", "dig", "curl", "nc", "openssl", "grep"} {
		testenv.Command(t, tool)
	}
	_, printed := startDemo(t)
	// What each command must show, by a word that only it contains.
	want := []struct{ marker, shows string }{
		{"dig ", "127.0.0.1"},
		{"https://" + demo.FQDN(demo.DBIDs()[0]), `"instance":"abcd1234"`},
		{"https://" + demo.FQDN(demo.DBIDs()[1]), `"instance":"ef567890"`},
		{"nc -vz", "succeeded"},
		{"openssl s_client", "Verification: OK"},
		{"nosuchdb", `"error":"database nosuchdb not found in production-orch-0000.neo4j.io"`},
		{demo.FQDN(demo.PrivateDBID), `"error":"public traffic is disabled for this instance"`},
		{demo.FQDN(demo.PausedDBID), `"error":"database 5ca1ab1e is paused"`},
		{demo.FQDN(demo.DownDBID), `"error":"database deadbeef is unavailable: it is not answering"`},
		{"/metrics", "ingress_connections_total"},
		{"/readyz", "ready"},
	}
	ran := 0
	for _, line := range strings.Split(printed, "\n") {
		cmdline := strings.TrimSpace(line)
		if !strings.HasPrefix(line, "  ") || cmdline == "" || strings.HasPrefix(cmdline, "#") {
			continue
		}
		ran++
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, "bash", "-c", cmdline).CombinedOutput()
		cancel()
		matched := false
		for _, w := range want {
			if !strings.Contains(cmdline, w.marker) {
				continue
			}
			matched = true
			if err != nil || !strings.Contains(string(out), w.shows) {
				t.Errorf("%s\nexit: %v, want output with %q:\n%s", cmdline, err, w.shows, out)
			}
			if w.marker == "nc -vz" && strings.Count(string(out), "succeeded") != 4 {
				t.Errorf("%s: want four connections to succeed:\n%s", cmdline, out)
			}
			break
		}
		if !matched {
			t.Errorf("the demo prints a command the test does not know: %s", cmdline)
		}
	}
	if ran < len(want) {
		t.Errorf("ran %d printed commands, want at least %d:\n%s", ran, len(want), printed)
	}
}
