// Package handover lets a running ingress pass its listening sockets to a
// new process of itself, so that a restart refuses no connection: the new
// process accepts on the very sockets the old one did (no second bind, no
// SO_REUSEPORT race in which a closing socket drops its accept queue), says
// when it serves, and only then does the old one stop accepting and drain.
package handover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The environment a new process finds its inheritance in.
const (
	envFDs   = "INGRESS_HANDOVER_FDS"   // "tcp :443=3,udp :53=4": socket key = fd
	envReady = "INGRESS_HANDOVER_READY" // the fd of the pipe to report readiness on
)

// Sockets binds listening sockets, or takes them over from the process
// that started this one. The zero value binds everything itself.
type Sockets struct {
	mu        sync.Mutex
	inherited map[string]*os.File // by key, until taken
	ready     *os.File            // to the previous process; nil if none
	bound     []boundSocket       // everything handed out, to pass on
}

type boundSocket struct {
	key string
	f   interface{ File() (*os.File, error) }
}

func key(network, addr string) string { return network + " " + addr }

// FromEnv returns the sockets this process inherited, if it was started
// by Start; otherwise an empty set.
func FromEnv() (*Sockets, error) {
	s := &Sockets{inherited: map[string]*os.File{}}
	if v := os.Getenv(envFDs); v != "" {
		for _, item := range strings.Split(v, ",") {
			k, fdText, ok := strings.Cut(item, "=")
			fd, err := strconv.Atoi(fdText)
			if !ok || err != nil || fd < 3 {
				return nil, fmt.Errorf("%s: bad entry %q", envFDs, item)
			}
			s.inherited[k] = os.NewFile(uintptr(fd), k)
		}
	}
	if v := os.Getenv(envReady); v != "" {
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 3 {
			return nil, fmt.Errorf("%s: bad fd %q", envReady, v)
		}
		s.ready = os.NewFile(uintptr(fd), "handover-ready")
	}
	os.Unsetenv(envFDs) // not for whatever this process starts
	os.Unsetenv(envReady)
	return s, nil
}

// Inherited reports whether this process took over from another.
func (s *Sockets) Inherited() bool { return s.ready != nil }

func (s *Sockets) take(k string) *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.inherited[k]
	delete(s.inherited, k)
	return f
}

func (s *Sockets) keep(k string, f interface{ File() (*os.File, error) }) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bound = append(s.bound, boundSocket{k, f})
}

// Listen returns a TCP listener for addr: the inherited one of the same
// configured address, or a new one.
func (s *Sockets) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	k := key(network, addr)
	var ln net.Listener
	var err error
	if f := s.take(k); f != nil {
		ln, err = net.FileListener(f)
		f.Close() // FileListener made its own copy
	} else {
		var lc net.ListenConfig
		ln, err = lc.Listen(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	if tl, ok := ln.(*net.TCPListener); ok {
		s.keep(k, tl)
	}
	return ln, nil
}

// ListenPacket returns a UDP socket for addr: the inherited one of the same
// configured address, or a new one.
func (s *Sockets) ListenPacket(ctx context.Context, network, addr string) (net.PacketConn, error) {
	k := key(network, addr)
	var pc net.PacketConn
	var err error
	if f := s.take(k); f != nil {
		pc, err = net.FilePacketConn(f)
		f.Close()
	} else {
		var lc net.ListenConfig
		pc, err = lc.ListenPacket(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	if uc, ok := pc.(*net.UDPConn); ok {
		s.keep(k, uc)
	}
	return pc, nil
}

// Ready tells the process this one took over from that it now serves, and
// closes inherited sockets the configuration no longer names.
func (s *Sockets) Ready() error {
	s.mu.Lock()
	for k, f := range s.inherited {
		f.Close()
		delete(s.inherited, k)
	}
	ready := s.ready
	s.ready = nil
	s.mu.Unlock()
	if ready == nil {
		return nil
	}
	defer ready.Close()
	_, err := ready.Write([]byte{1})
	return err
}

// Start runs a new process of argv with this process's sockets and
// environment, and waits until it says it serves (or exits, or timeout
// passes). The caller then stops accepting and drains; the sockets stay
// open in the new process.
func (s *Sockets) Start(argv []string, timeout time.Duration) (*os.Process, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("handover pipe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{w} // fd 3
	var fds []string
	s.mu.Lock()
	for _, b := range s.bound {
		f, err := b.f.File() // a duplicate, blocking-mode descriptor
		if errors.Is(err, net.ErrClosed) {
			continue // closed since (a bind retried on another port)
		}
		if err != nil {
			s.mu.Unlock()
			closeAll(cmd.ExtraFiles)
			return nil, fmt.Errorf("handing over %s: %w", b.key, err)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		fds = append(fds, fmt.Sprintf("%s=%d", b.key, 2+len(cmd.ExtraFiles)))
	}
	s.mu.Unlock()
	cmd.Env = append(os.Environ(), envFDs+"="+strings.Join(fds, ","), envReady+"=3")
	err = cmd.Start()
	closeAll(cmd.ExtraFiles) // the child has its copies
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	readyc := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := r.Read(b[:])
		readyc <- err
	}()
	select {
	case err := <-readyc:
		if err == nil {
			return cmd.Process, nil
		}
		cmd.Process.Kill()
		return nil, fmt.Errorf("the new process closed its ready pipe: %w", err)
	case err := <-exited:
		return nil, fmt.Errorf("the new process exited before it served: %v", err)
	case <-time.After(timeout):
		cmd.Process.Kill()
		return nil, errors.New("the new process did not serve in time")
	}
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
