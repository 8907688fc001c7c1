package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/testenv"
)

// TestVendorChecksInANetworkNamespace runs the connectivity checks the
// vendor's docs give, exactly, on the default ports and with the system
// resolver: inside a network namespace made for the test, whose resolv.conf
// points at the ingress's DNS stub on port 53. It needs root; where network
// namespaces are not permitted it says so and skips.
func TestVendorChecksInANetworkNamespace(t *testing.T) {
	testenv.External(t)
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	for _, tool := range []string{"ip", "nslookup", "curl", "nc"} {
		testenv.Command(t, tool)
	}
	name := fmt.Sprintf("ingress-e2e-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("network namespaces are not permitted here: ip netns add: %v: %s", err, out)
	}
	etc := filepath.Join("/etc/netns", name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", name).Run()
		os.RemoveAll(etc)
	})
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("loopback up: %v: %s", err, out)
	}
	// `ip netns exec` bind-mounts this over /etc/resolv.conf in the namespace.
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n"), 0o644)

	bin := ingressBin.Path(t)
	dir := t.TempDir()
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	demoCmd := exec.CommandContext(ctx, "ip", "netns", "exec", name, bin, "demo", "-dir", dir, "-real-ports")
	demoCmd.Stdout, demoCmd.Stderr = logs, logs
	if err := demoCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		demoCmd.Wait()
		if t.Failed() {
			t.Logf("demo output:\n%s", logs)
		}
	})
	inNS := func(env []string, args ...string) (string, error) {
		cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer ccancel()
		cmd := exec.CommandContext(cctx, "ip", append([]string{"netns", "exec", name}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	testenv.WaitFor(t, "the demo to be ready", func() bool {
		out, err := inNS(nil, "curl", "-sf", "http://127.0.0.1:9090/readyz")
		return err == nil && strings.Contains(out, "ready")
	})

	fqdn := "abcd1234.production-orch-0000.neo4j.io"
	out, err := inNS(nil, "nslookup", fqdn)
	if err != nil || !strings.Contains(out, "Address: 127.0.0.1") {
		t.Errorf("nslookup %s: %v\n%s", fqdn, err, out)
	}
	// curl trusts the demo CA through its environment; the command is the vendor's.
	out, err = inNS([]string{"CURL_CA_BUNDLE=" + filepath.Join(dir, "ca.pem")}, "curl", "-sS", "https://"+fqdn)
	if err != nil || !strings.Contains(out, `"instance":"abcd1234"`) {
		t.Errorf("curl https://%s: %v\n%s", fqdn, err, out)
	}
	for _, port := range []string{"443", "7687", "7474", "8491"} {
		out, err := inNS(nil, "nc", "-vz", fqdn, port)
		if err != nil || !strings.Contains(out, "succeeded") {
			t.Errorf("nc -vz %s %s: %v\n%s", fqdn, port, err, out)
		}
	}
}
