//go:build !linux

package dnsstub

import (
	"net"
	"net/netip"
)

// udpBatch: elsewhere a batch is one datagram.
const udpBatch = 1

// udpBatcher reads and answers one datagram a call outside Linux, where
// there is no recvmmsg; production runs on Linux.
type udpBatcher struct {
	conn  *net.UDPConn
	buf   [maxUDPSize]byte
	out   [maxUDPSize]byte
	n     int
	from  netip.AddrPort
	reply []byte // queued for flush
}

func newUDPBatcher(conn *net.UDPConn) (*udpBatcher, error) {
	return &udpBatcher{conn: conn}, nil
}

func (b *udpBatcher) read() (int, error) {
	n, from, err := b.conn.ReadFromUDPAddrPort(b.buf[:])
	if err != nil {
		return 0, err
	}
	b.n, b.from = n, from
	return 1, nil
}

func (b *udpBatcher) packet(int) []byte        { return b.buf[:b.n] }
func (b *udpBatcher) answerBuf(int) []byte     { return b.out[:] }
func (b *udpBatcher) peer(int) netip.AddrPort  { return b.from }
func (b *udpBatcher) answer(_ int, msg []byte) { b.reply = msg }

func (b *udpBatcher) flush() error {
	if b.reply == nil {
		return nil
	}
	_, err := b.conn.WriteToUDPAddrPort(b.reply, b.from)
	b.reply = nil
	return err
}
