package handover

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/testenv"
)

// The test binary is also the new process the tests hand over to: with
// childEnv set, TestMain runs that mode instead of the tests.
const (
	childEnv     = "HANDOVER_TEST_CHILD"
	childStarted = "HANDOVER_TEST_STARTED" // a file the "hang" child writes its PID to
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "serve":
		os.Exit(serveChild())
	case "fail":
		os.Exit(1) // a bad config, say: before it looks at the sockets
	case "hang":
		os.WriteFile(os.Getenv(childStarted), []byte(strconv.Itoa(os.Getpid())), 0o644)
		// A new process that never serves: it waits for a signal that never
		// comes, until Start kills it (select{} alone would be a deadlock).
		never := make(chan os.Signal, 1)
		signal.Notify(never, syscall.SIGUSR1)
		<-never
	}
	os.Exit(2)
}

// serveChild takes over two TCP listeners and a UDP socket, all
// configured as 127.0.0.1:0, says it serves, and answers once on each with
// the order in which it asked for it.
func serveChild() int {
	s, err := FromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	ln0, err0 := s.Listen(ctx, "tcp", "127.0.0.1:0")
	ln1, err1 := s.Listen(ctx, "tcp", "127.0.0.1:0")
	pc, err2 := s.ListenPacket(ctx, "udp", "127.0.0.1:0")
	if err0 != nil || err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, err0, err1, err2)
		return 1
	}
	if err := s.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i, ln := range []net.Listener{ln0, ln1} {
		conn, err := ln.Accept()
		if err != nil {
			return 1
		}
		fmt.Fprintf(conn, "%d\n", i)
		conn.Close()
	}
	var b [16]byte
	_, from, err := pc.ReadFrom(b[:])
	if err != nil {
		return 1
	}
	pc.WriteTo([]byte("2"), from)
	return 0
}

// childArgv runs the test binary as a new process in mode.
func childArgv(t *testing.T, mode string) []string {
	t.Setenv(childEnv, mode) // Start passes this process's environment on
	return []string{os.Args[0], "-test.run=^$"}
}

// bind binds two TCP listeners and a UDP socket, all on 127.0.0.1:0.
func bind(t *testing.T, s *Sockets) (net.Listener, net.Listener, net.PacketConn) {
	t.Helper()
	ctx := context.Background()
	ln0, err := s.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln1, err := s.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := s.ListenPacket(ctx, "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln0.Close(); ln1.Close(); pc.Close() })
	return ln0, ln1, pc
}

func emptySockets(t *testing.T) *Sockets {
	t.Helper()
	s, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if s.Inherited() {
		t.Fatal("inherited sockets in a test")
	}
	return s
}

// TestStartHandsEachSocketToItsOwnPart: sockets that share a configured
// address (127.0.0.1:0) each reach the part of the new process that asks
// for them in the same order.
func TestStartHandsEachSocketToItsOwnPart(t *testing.T) {
	s := emptySockets(t)
	ln0, ln1, pc := bind(t, s)
	proc, err := s.Start(context.Background(), childArgv(t, "serve"), testenv.WaitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Kill() })
	// As the old process: stop accepting; the new one has the sockets.
	ln0.Close()
	ln1.Close()
	pc.Close()
	for i, addr := range []net.Addr{ln0.Addr(), ln1.Addr()} {
		conn, err := net.DialTimeout("tcp", addr.String(), testenv.WaitTimeout)
		if err != nil {
			t.Fatalf("listener %d (%v) after the hand-over: %v", i, addr, err)
		}
		conn.SetDeadline(time.Now().Add(testenv.WaitTimeout))
		line, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if want := fmt.Sprintf("%d\n", i); line != want {
			t.Errorf("listener %d (%v) answered %q, %v: want %q (the new process's listener %d)", i, addr, line, err, want, i)
		}
	}
	conn, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	conn.Write([]byte("?"))
	var b [16]byte
	if n, err := conn.Read(b[:]); err != nil || string(b[:n]) != "2" {
		t.Errorf("UDP socket after the hand-over: %q, %v", b[:n], err)
	}
}

// TestFromEnvOrdinals: a new process takes the sockets of one address in
// their ordinal order, whatever the order of the list, and understands a
// list without ordinals (from a process that predates them).
func TestFromEnvOrdinals(t *testing.T) {
	ctx := context.Background()
	var fds []int // raw duplicates: FromEnv owns them
	var addrs []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := ln.(*net.TCPListener).SyscallConn()
		var fd int
		rc.Control(func(s uintptr) { fd, err = syscall.Dup(int(s)) })
		ln.Close()
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		addrs = append(addrs, ln.Addr().String())
	}
	t.Setenv(envFDs, fmt.Sprintf("tcp 127.0.0.1:0#2=%d,tcp 127.0.0.1:0=%d,tcp 127.0.0.1:0#1=%d", fds[2], fds[0], fds[1]))
	s, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range addrs {
		ln, err := s.Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if got := ln.Addr().String(); got != want {
			t.Errorf("Listen %d: %s, want the inherited %s", i, got, want)
		}
	}
	for _, bad := range []string{"tcp :1#0=3", "tcp :1#x=3", "tcp :1=x"} {
		t.Setenv(envFDs, bad)
		if _, err := FromEnv(); err == nil {
			t.Errorf("FromEnv took %q", bad)
		}
	}
}

// nonblocking fails t unless every one of the sockets bind made is in
// non-blocking mode.
func nonblocking(t *testing.T, ln0, ln1 net.Listener, pc net.PacketConn) {
	t.Helper()
	for name, sock := range map[string]syscall.Conn{
		"TCP listener 0": ln0.(*net.TCPListener), "TCP listener 1": ln1.(*net.TCPListener), "UDP socket": pc.(*net.UDPConn),
	} {
		rc, err := sock.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var flags uintptr
		var errno syscall.Errno
		rc.Control(func(fd uintptr) { flags, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0) })
		if errno != 0 {
			t.Fatal(errno)
		}
		if flags&syscall.O_NONBLOCK == 0 {
			t.Errorf("the %s is in blocking mode", name)
		}
	}
}

// TestFailedStartLeavesSocketsNonBlocking: exec.Cmd puts the handed-over
// duplicates, and so the live sockets, in blocking mode; after a new
// process that fails (or does not even start) they are non-blocking again.
func TestFailedStartLeavesSocketsNonBlocking(t *testing.T) {
	for _, tc := range []struct {
		name string
		argv func(t *testing.T) []string
	}{
		{"child exits", func(t *testing.T) []string { return childArgv(t, "fail") }},
		{"no such binary", func(t *testing.T) []string { return []string{filepath.Join(t.TempDir(), "ingress")} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := emptySockets(t)
			ln0, ln1, pc := bind(t, s)
			if _, err := s.Start(context.Background(), tc.argv(t), testenv.WaitTimeout); err == nil {
				t.Fatal("Start succeeded")
			} else {
				t.Log(err)
			}
			nonblocking(t, ln0, ln1, pc)
		})
	}
}

// TestStartEndsWithContext: when ctx ends while the new process starts,
// Start kills it and returns at once, rather than after its timeout (a
// failure bound here).
func TestStartEndsWithContext(t *testing.T) {
	s := emptySockets(t)
	ln0, ln1, pc := bind(t, s)
	started := filepath.Join(t.TempDir(), "started")
	t.Setenv(childStarted, started)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pidc := make(chan int, 1)
	go func() {
		var pid int
		testenv.Poll(testenv.WaitTimeout, func() bool {
			b, err := os.ReadFile(started)
			pid, _ = strconv.Atoi(string(b))
			return err == nil && pid > 0
		})
		pidc <- pid
		cancel()
	}()
	begin := time.Now()
	_, err := s.Start(ctx, childArgv(t, "hang"), testenv.WaitTimeout)
	t.Logf("%v after %v", err, time.Since(begin))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Start: %v, want it to end with the context", err)
	}
	pid := <-pidc
	if pid == 0 {
		t.Fatal("the new process never started")
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the new process %d is still there (kill 0: %v)", pid, err)
	}
	nonblocking(t, ln0, ln1, pc)
}
