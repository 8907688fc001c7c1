package ingress

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"unsafe"
)

// A tls.Conn keeps the buffers it read into for its whole life: rawInput
// grows to the largest record received (the post-quantum ClientHello
// makes that about 2 KiB for every connection, a 16 KiB record 16.5 KiB),
// hand to the largest handshake message, and input points into rawInput.
// That is about half the live heap of an idle connection, and crypto/tls
// has no way to give it back. A parked direction's source is read by no
// one until it resumes, so there, with nothing buffered, the buffers are
// set back to what a new tls.Conn has: empty, to be grown again by the
// next read.
//
// The fields are found by name and type, not assumed: on a toolchain whose
// crypto/tls has changed them, nothing is released (and
// TestTLSReadBuffersFound fails, so that the change is noticed).

// tlsReadBuffers holds the offsets of a tls.Conn's read buffers.
type tlsReadBuffers struct {
	rawInput, input, hand uintptr
	found                 bool
}

// tlsBuffers is computed once and never changed.
var tlsBuffers = findTLSReadBuffers()

// findTLSReadBuffers looks the read buffers up in this toolchain's
// tls.Conn.
func findTLSReadBuffers() tlsReadBuffers {
	conn := reflect.TypeFor[tls.Conn]()
	offset := func(name string, want reflect.Type) (uintptr, bool) {
		f, ok := conn.FieldByName(name)
		return f.Offset, ok && f.Type == want && len(f.Index) == 1
	}
	buffer, reader := reflect.TypeFor[bytes.Buffer](), reflect.TypeFor[bytes.Reader]()
	var b tlsReadBuffers
	var okRaw, okInput, okHand bool
	b.rawInput, okRaw = offset("rawInput", buffer)
	b.input, okInput = offset("input", reader)
	b.hand, okHand = offset("hand", buffer)
	b.found = okRaw && okInput && okHand
	return b
}

// release empties c's read buffers if they hold nothing, and reports
// whether it did. Only the goroutine that reads c may call it, between
// reads.
func (b tlsReadBuffers) release(c *tls.Conn) bool {
	if !b.found {
		return false
	}
	base := unsafe.Pointer(c)
	rawInput := (*bytes.Buffer)(unsafe.Add(base, b.rawInput))
	input := (*bytes.Reader)(unsafe.Add(base, b.input))
	hand := (*bytes.Buffer)(unsafe.Add(base, b.hand))
	// A partial record or handshake message is kept: its rest is on its
	// way.
	if rawInput.Len() != 0 || input.Len() != 0 || hand.Len() != 0 {
		return false
	}
	*rawInput, *input, *hand = bytes.Buffer{}, bytes.Reader{}, bytes.Buffer{}
	return true
}
