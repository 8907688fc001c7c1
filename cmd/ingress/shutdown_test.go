package main

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/testenv"
)

// TestShutdownDelayKeepsServing: behind a cloud load balancer, SIGTERM
// turns /readyz to 503 at once while new connections are still served for
// timeouts.shutdown_delay (the load balancer sends them until its health
// checks see the 503); then the listeners close and the process drains and
// exits.
func TestShutdownDelayKeepsServing(t *testing.T) {
	testenv.External(t)
	// The delay must outlast the checks below on a busy machine: it bounds
	// them, it does not pace them.
	const delay = 20 * time.Second
	c := startChaosIngress(t, chaosRoutes(e2eEchoBackend(t), 0), "timeouts: {shutdown_delay: 20s, drain: 2s}\n")
	if err := c.ping(); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	c.cmd.Process.Signal(syscall.SIGTERM)
	testenv.WaitFor(t, "/readyz to say 503", func() bool { return c.readyz() == 503 })
	// A connection made after the 503 is served end to end.
	if err := c.ping(); err != nil {
		t.Fatalf("a new connection during shutdown_delay: %v", err)
	}
	if since := time.Since(sent); since >= delay {
		t.Fatalf("the checks took %v, longer than the %v delay: inconclusive", since, delay)
	}
	if !c.alive() {
		t.Fatal("the process exited during shutdown_delay")
	}
	c.waitLog("stopping: /readyz says 503")
	// Then the listeners close and the process exits.
	c.waitExit(delay+2*time.Second+testenv.WaitTimeout, "after shutdown_delay and the drain")
	if conn, err := net.DialTimeout("tcp", c.bolt, time.Second); err == nil {
		conn.Close()
		t.Error("the listener still accepts after the process exited")
	}
}
