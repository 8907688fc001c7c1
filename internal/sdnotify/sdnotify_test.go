package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listen binds a unixgram socket at addr and returns a function reading
// the next datagram.
func listen(t *testing.T, addr string) func() string {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return func() string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // a failure bound: Send has returned
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("reading the notification: %v", err)
		}
		return string(buf[:n])
	}
}

func TestSend(t *testing.T) {
	for _, c := range []struct{ name, addr string }{
		{"path", filepath.Join(t.TempDir(), "notify")},
		{"abstract namespace", fmt.Sprintf("@ingress-sdnotify-test-%d", os.Getpid())},
	} {
		t.Run(c.name, func(t *testing.T) {
			next := listen(t, c.addr)
			t.Setenv("NOTIFY_SOCKET", c.addr)
			for _, state := range []string{Ready, MainPID(4242), Stopping} {
				if err := Send(state); err != nil {
					t.Fatalf("Send(%q): %v", state, err)
				}
				if got := next(); got != state {
					t.Errorf("received %q, want %q", got, state)
				}
			}
			if os.Getenv("NOTIFY_SOCKET") != c.addr {
				t.Error("NOTIFY_SOCKET was unset: a hand-over's new process could not send READY=1")
			}
		})
	}
	if MainPID(4242) != "MAINPID=4242" {
		t.Errorf("MainPID(4242) = %q", MainPID(4242))
	}
}

func TestSendWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Send(Ready); err != nil {
		t.Errorf("Send without NOTIFY_SOCKET: %v, want nothing done", err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	if err := Send(Ready); err == nil {
		t.Error("Send to a socket nobody listens on: no error")
	}
}

func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	f := PIDFile(filepath.Join(dir, "ingress.pid"))
	read := func() string {
		t.Helper()
		data, err := os.ReadFile(string(f))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	own := strconv.Itoa(os.Getpid()) + "\n"

	os.WriteFile(string(f), []byte("1\n"), 0o644) // a previous process's
	if err := f.Write(); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != own {
		t.Errorf("PID file holds %q, want %q", got, own)
	}
	if fi, err := os.Stat(string(f)); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("PID file mode %v (%v), want 0644", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want the PID file alone (no temporary file left)", len(entries))
	}

	// A hand-over's new process rewrote it: this process leaves it alone.
	os.WriteFile(string(f), []byte("999999999\n"), 0o644)
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "999999999\n" {
		t.Errorf("Remove touched another process's PID file: %q", got)
	}

	if err := f.Write(); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(string(f)); !os.IsNotExist(err) {
		t.Errorf("PID file naming this process still there after Remove: %v", err)
	}
	if err := f.Remove(); err != nil {
		t.Errorf("Remove of a missing file: %v", err)
	}
}

func TestPIDFileErrorsAndNone(t *testing.T) {
	if err := PIDFile("").Write(); err != nil {
		t.Errorf("empty path: %v", err)
	}
	if err := PIDFile("").Remove(); err != nil {
		t.Errorf("empty path: %v", err)
	}
	if err := PIDFile(filepath.Join(t.TempDir(), "missing", "ingress.pid")).Write(); err == nil {
		t.Error("Write into a missing directory: no error")
	}
}
