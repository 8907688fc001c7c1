package dnsstub

import (
	"net"
	"testing"
)

// TestUDPBatchAllocatesNothing: a batch read, answered and flushed
// allocates nothing once the batcher is made.
func TestUDPBatchAllocatesNothing(t *testing.T) {
	server, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client, err := net.DialUDP("udp", nil, server.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	b, err := newUDPBatcher(server)
	if err != nil {
		t.Fatal(err)
	}
	msg, back := []byte("ping"), make([]byte, 16)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		n, err := b.read()
		if err != nil || n != 1 {
			t.Fatalf("read: %d datagrams, %v", n, err)
		}
		b.answer(0, b.packet(0))
		if err := b.flush(); err != nil {
			t.Fatal(err)
		}
		if n, err := client.Read(back); err != nil || string(back[:n]) != "ping" {
			t.Fatalf("echo: %q, %v", back[:n], err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
}
