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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The environment a new process finds its inheritance in.
const (
	envFDs   = "INGRESS_HANDOVER_FDS"   // "tcp :443=3,udp :53=4,tcp :443#1=5": socket key = fd
	envReady = "INGRESS_HANDOVER_READY" // the fd of the pipe to report readiness on
)

// Sockets binds listening sockets, or takes them over from the process
// that started this one. The zero value binds everything itself.
//
// A socket is handed over under its network and configured address, and
// the ordinal of that address among the live sockets with the same one
// ("tcp 127.0.0.1:0", then "tcp 127.0.0.1:0#1"): two parts configured
// with the same address (port 0 for both, say) each get their own socket
// back, in the order they ask for it, which the same config makes the
// order they bound them in. The first of each address carries no ordinal,
// as before ordinals existed: processes of either kind understand each
// other for every address used once.
type Sockets struct {
	mu        sync.Mutex
	inherited map[string][]*os.File // by address key, in ordinal order, until taken
	ready     *os.File              // to the previous process; nil if none
	bound     []boundSocket         // everything handed out, to pass on
}

// socket is what Start needs of a bound socket: *net.TCPListener and
// *net.UDPConn.
type socket interface {
	File() (*os.File, error)
	SyscallConn() (syscall.RawConn, error)
}

type boundSocket struct {
	key string // network and configured address, without ordinal
	s   socket
}

func key(network, addr string) string { return network + " " + addr }

// FromEnv returns the sockets this process inherited, if it was started
// by Start; otherwise an empty set.
func FromEnv() (*Sockets, error) {
	s := &Sockets{inherited: map[string][]*os.File{}}
	if v := os.Getenv(envFDs); v != "" {
		type entry struct {
			ord int
			f   *os.File
		}
		byKey := map[string][]entry{}
		for _, item := range strings.Split(v, ",") {
			k, fdText, ok := strings.Cut(item, "=")
			fd, err := strconv.Atoi(fdText)
			if !ok || err != nil || fd < 3 {
				return nil, fmt.Errorf("%s: bad entry %q", envFDs, item)
			}
			ord := 0
			if i := strings.LastIndexByte(k, '#'); i >= 0 {
				if ord, err = strconv.Atoi(k[i+1:]); err != nil || ord < 1 {
					return nil, fmt.Errorf("%s: bad entry %q", envFDs, item)
				}
				k = k[:i]
			}
			byKey[k] = append(byKey[k], entry{ord, os.NewFile(uintptr(fd), item)})
		}
		for k, entries := range byKey {
			slices.SortFunc(entries, func(a, b entry) int { return a.ord - b.ord })
			for _, e := range entries {
				s.inherited[k] = append(s.inherited[k], e.f)
			}
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

// take returns the first inherited socket not taken yet for k, or nil.
func (s *Sockets) take(k string) *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	files := s.inherited[k]
	if len(files) == 0 {
		return nil
	}
	f := files[0]
	if len(files) == 1 {
		delete(s.inherited, k)
	} else {
		s.inherited[k] = files[1:]
	}
	return f
}

func (s *Sockets) keep(k string, sock socket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bound = append(s.bound, boundSocket{k, sock})
}

// Listen returns a TCP listener for addr: the next inherited one of the
// same configured address, or a new one.
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

// ListenPacket returns a UDP socket for addr: the next inherited one of the
// same configured address, or a new one.
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
	for k, files := range s.inherited {
		closeAll(files)
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
// passes, or ctx ends: then it kills it). The caller then stops accepting
// and drains; the sockets stay open in the new process. Whatever the
// outcome, this process's sockets stay as they were: non-blocking.
func (s *Sockets) Start(ctx context.Context, argv []string, timeout time.Duration) (*os.Process, error) {
	if ctx.Err() != nil {
		return nil, fmt.Errorf("not starting a new process: %w", context.Cause(ctx))
	}
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
	seen := map[string]int{} // live sockets so far by address key: the next one's ordinal
	for _, b := range s.bound {
		f, err := b.s.File() // a duplicate sharing the socket's file description
		if errors.Is(err, net.ErrClosed) {
			continue // closed since (a bind retried on another port)
		}
		if err != nil {
			s.mu.Unlock()
			closeAll(cmd.ExtraFiles)
			return nil, fmt.Errorf("handing over %s: %w", b.key, err)
		}
		k := b.key
		if n := seen[b.key]; n > 0 {
			k += "#" + strconv.Itoa(n)
		}
		seen[b.key]++
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		fds = append(fds, fmt.Sprintf("%s=%d", k, 2+len(cmd.ExtraFiles)))
	}
	s.mu.Unlock()
	cmd.Env = append(os.Environ(), envFDs+"="+strings.Join(fds, ","), envReady+"=3")
	err = cmd.Start()
	closeAll(cmd.ExtraFiles) // the child has its copies
	// exec.Cmd called Fd() on each duplicate, which put the file
	// description it shares with the live socket in blocking mode: this
	// process's accept loops and batched UDP reads would then block (a new
	// process sets it back only if it gets as far as taking the sockets).
	nonblockErr := s.setNonblock()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("starting %s: %w", argv[0], err), nonblockErr)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	readyc := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := r.Read(b[:])
		readyc <- err
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	fail := func(why error) (*os.Process, error) {
		cmd.Process.Kill()
		<-exited // gone (if it served for an instant, it served no longer)
		return nil, errors.Join(why, nonblockErr)
	}
	select {
	case err := <-readyc:
		if err == nil {
			return cmd.Process, nil
		}
		return fail(fmt.Errorf("the new process closed its ready pipe: %w", err))
	case err := <-exited:
		return nil, errors.Join(fmt.Errorf("the new process exited before it served: %v", err), nonblockErr)
	case <-timer.C:
		return fail(errors.New("the new process did not serve in time"))
	case <-ctx.Done():
		select {
		case err := <-readyc:
			if err == nil {
				return cmd.Process, nil // it serves already: it is the one that stays
			}
		default:
		}
		return fail(fmt.Errorf("the new process was still starting: %w", context.Cause(ctx)))
	}
}

// setNonblock puts every socket still open back in non-blocking mode.
func (s *Sockets) setNonblock() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, b := range s.bound {
		rc, err := b.s.SyscallConn()
		if err == nil {
			var serr error
			err = rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), true) })
			if err == nil {
				err = serr
			}
		}
		if err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("%s: setting non-blocking mode back: %w", b.key, err))
		}
	}
	return errors.Join(errs...)
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
