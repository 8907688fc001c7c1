//go:build linux

package dnsstub

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpBatch is how many datagrams one recvmmsg/sendmmsg call moves.
const udpBatch = 32

// mmsghdr is the kernel's struct mmsghdr: Go pads it as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32 // bytes received, or sent
}

// udpBatcher reads a batch of datagrams with one recvmmsg and sends their
// answers with one sendmmsg, on buffers, headers and peer addresses that
// are all its own: a batch allocates nothing. The calls are raw (the
// scheduler is not told) and never block (MSG_DONTWAIT, whatever the
// socket's O_NONBLOCK, which an exec during a hand-over clears for a
// moment); a socket with nothing to read, or no room to write, waits in
// the runtime's poller. Through net's batch wrappers each call told the
// scheduler it might block, and a call that outlived a sysmon tick had its
// P handed to another thread: the futex and nanosleep traffic of that was
// a tenth of the stub's CPU under load.
type udpBatcher struct {
	rc    syscall.RawConn
	in    [udpBatch]mmsghdr
	inIov [udpBatch]unix.Iovec
	peers [udpBatch]unix.RawSockaddrInet6 // large enough for either family
	bufs  [udpBatch][maxUDPSize]byte
	out   [udpBatch][maxUDPSize]byte
	// The answers queued for flush.
	sends    [udpBatch]mmsghdr
	outIov   [udpBatch]unix.Iovec
	sendSlot [udpBatch]int // the slot whose sender each answer goes to
	queued   int
	sent     int // of the queued answers, during flush

	// The calls, made once: a closure made per call would escape into
	// the RawConn and allocate. Each leaves its result in n and errno.
	recv, send func(fd uintptr) bool
	n          int
	errno      syscall.Errno
}

func newUDPBatcher(conn *net.UDPConn) (*udpBatcher, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("udp socket: %w", err)
	}
	b := &udpBatcher{rc: rc}
	b.recv = func(fd uintptr) bool {
		b.n, b.errno = mmsg(unix.SYS_RECVMMSG, fd, &b.in[0], udpBatch, unix.MSG_DONTWAIT|unix.MSG_WAITFORONE)
		return b.errno != unix.EAGAIN
	}
	b.send = func(fd uintptr) bool {
		b.n, b.errno = mmsg(unix.SYS_SENDMMSG, fd, &b.sends[b.sent], b.queued-b.sent, unix.MSG_DONTWAIT)
		return b.errno != unix.EAGAIN
	}
	for i := range b.in {
		b.inIov[i].Base = &b.bufs[i][0]
		b.inIov[i].SetLen(maxUDPSize)
		b.in[i].hdr.Iov = &b.inIov[i]
		b.in[i].hdr.SetIovlen(1)
	}
	return b, nil
}

// read waits for at least one datagram and returns how many it read into
// slots 0..n-1. It returns net.ErrClosed once the socket is closed.
func (b *udpBatcher) read() (int, error) {
	for i := range b.in {
		b.in[i].hdr.Name = (*byte)(unsafe.Pointer(&b.peers[i]))
		b.in[i].hdr.Namelen = unix.SizeofSockaddrInet6
	}
	if err := b.rc.Read(b.recv); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, fmt.Errorf("recvmmsg: %w", b.errno)
	}
	return b.n, nil
}

// packet is the datagram read into slot i.
func (b *udpBatcher) packet(i int) []byte { return b.bufs[i][:b.in[i].n] }

// answerBuf is the buffer for slot i's answer.
func (b *udpBatcher) answerBuf(i int) []byte { return b.out[i][:] }

// peer is the sender of slot i's datagram.
func (b *udpBatcher) peer(i int) netip.AddrPort {
	sa := &b.peers[i]
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(a, port)
	}
	return netip.AddrPort{}
}

// answer queues msg (in slot i's answer buffer, or any buffer that lives
// until flush) for slot i's sender.
func (b *udpBatcher) answer(i int, msg []byte) {
	j := b.queued
	b.queued++
	b.outIov[j].Base = unsafe.SliceData(msg)
	b.outIov[j].SetLen(len(msg))
	h := &b.sends[j].hdr
	h.Name = (*byte)(unsafe.Pointer(&b.peers[i]))
	h.Namelen = b.in[i].hdr.Namelen
	h.Iov = &b.outIov[j]
	h.SetIovlen(1)
	b.sendSlot[j] = i
}

// flush sends the queued answers. A datagram the kernel refuses (say the
// sender's address is unreachable) is dropped and the rest still go; the
// first such error is returned.
func (b *udpBatcher) flush() error {
	var first error
	for b.sent = 0; b.sent < b.queued; {
		if err := b.rc.Write(b.send); err != nil {
			b.queued = 0
			return err
		}
		if b.errno != 0 {
			first = cmp.Or(first, fmt.Errorf("sendmmsg to %s: %w", b.peer(b.sendSlot[b.sent]), b.errno))
			b.n = 1 // skip the datagram that failed
		}
		b.sent += b.n
	}
	b.queued = 0
	return first
}

// mmsg makes one recvmmsg or sendmmsg call of vlen headers from first,
// again while a signal interrupts it. Only EAGAIN may send the caller to
// wait in the poller: the poller forgot the socket's readiness before the
// call, and a datagram already queued would wait for the next to arrive.
func mmsg(trap uintptr, fd uintptr, first *mmsghdr, vlen int, flags int) (int, syscall.Errno) {
	for {
		r, _, e := unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(first)), uintptr(vlen), uintptr(flags), 0, 0)
		if e != unix.EINTR {
			return int(r), e
		}
	}
}
