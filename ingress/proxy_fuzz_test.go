package ingress

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/neo4j/private-ingress/internal/testenv"
)

// tcpPipe is one end of a net.Pipe that claims a loopback TCP peer, so
// that the trusted-source check applies as on a real socket.
type tcpPipe struct{ net.Conn }

func (tcpPipe) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} }

// FuzzProxyHeader feeds raw bytes, as a client or a load balancer would
// send them before TLS, through the PROXY header path: it must never panic
// or hang, and whatever follows an accepted header (or the whole input,
// when there is none) must reach the TLS layer byte for byte.
func FuzzProxyHeader(f *testing.F) {
	src := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1234}
	dst := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 7687}
	h := proxyproto.HeaderProxyFromAddrs(2, src, dst)
	h.SetTLVs([]proxyproto.TLV{{Type: 0xEA, Value: []byte("\x01vpce-0a1b2c3d4e5f6a7b8")}})
	v2, _ := h.Format()
	v1, _ := proxyproto.HeaderProxyFromAddrs(1, src, dst).Format()
	hello := []byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5}
	for _, seed := range [][]byte{append(v2, hello...), append(v1, hello...), hello, v2[:13], []byte("PROXY UNKNOWN\r\n"), nil} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, in []byte, required bool) {
		mode := ProxyOptional
		if required {
			mode = ProxyRequired
		}
		p := proxyPolicy{mode: mode, trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
		client, server := net.Pipe()
		go func() {
			client.Write(in)
			client.Close()
		}()
		c := newConn(tcpPipe{server}, nil)
		c.SetDeadline(time.Now().Add(testenv.WaitTimeout)) // a failure bound
		defer c.Close()
		if err := p.readProxyHeader(c); err != nil {
			return // refused: closed before TLS
		}
		rest, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("reading after the header: %v", err)
		}
		if !bytes.HasSuffix(in, rest) {
			t.Fatalf("bytes after the header changed: in %q, out %q", in, rest)
		}
		if c.proxyHeader == nil && !bytes.Equal(in, rest) {
			t.Fatalf("no header, yet bytes were lost: in %q, out %q", in, rest)
		}
		// What tells a probe from a failed hello counts exactly what TLS got.
		if c.proxyHeader != nil && c.afterHeader != int64(len(rest)) {
			t.Fatalf("afterHeader = %d, want the %d bytes after the header", c.afterHeader, len(rest))
		}
	})
}
