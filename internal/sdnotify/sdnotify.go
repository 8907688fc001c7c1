// Package sdnotify tells the service manager what this process is doing,
// so that a systemd unit of Type=notify follows it, across a SIGUSR2
// hand-over too: sd_notify datagrams to $NOTIFY_SOCKET (READY=1,
// STOPPING=1, MAINPID=), and a PID file for supervisors that read one.
// A few lines of our own rather than a library: the protocol is one
// datagram per state.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
)

// The states this process sends.
const (
	// Ready says the process serves: systemd then counts the unit as
	// started. The new process of a hand-over sends it too.
	Ready = "READY=1"
	// Stopping says the process is really stopping (SIGTERM), not
	// handing over.
	Stopping = "STOPPING=1"
)

// MainPID names pid as the unit's main process: the old process of a
// hand-over sends it once the new one serves, before it leaves, so that
// systemd follows the new process instead of stopping the unit when the
// old one exits.
func MainPID(pid int) string { return "MAINPID=" + strconv.Itoa(pid) }

// Send sends state to $NOTIFY_SOCKET, and does nothing without it (not
// under systemd, or a unit that is not Type=notify). The variable stays
// set, unlike sd_notify's unset_environment: the process a hand-over
// starts inherits it and sends its own READY=1 there.
func Send(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	// A leading @ names Linux's abstract namespace: Go's socket address
	// conversion already turns it into the leading NUL the kernel wants.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", state, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", state, err)
	}
	return nil
}
