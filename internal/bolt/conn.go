package bolt

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic opens every Bolt connection: the client's "GoGoBolt" preamble.
const Magic = 0x6060B017

// Version is a Bolt protocol version.
type Version struct{ Major, Minor byte }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// manifestMajor marks the proposal of manifest negotiation (Bolt 5.7+),
// which we do not speak: the drivers also propose plain versions.
const manifestMajor = 0xFF

// ErrNoVersion means the client proposed no version that we speak.
var ErrNoVersion = errors.New("bolt: no common protocol version")

// Negotiate reads the client's preamble and four proposals from r and
// answers with the first proposal, in the client's order of preference,
// that supported contains (the highest minor within a proposal's range).
// The answer goes out in one write: the JavaScript driver reads it from the
// first chunk it receives. With no overlap it answers zero and returns
// ErrNoVersion, as a Neo4j server does.
func Negotiate(r io.Reader, w io.Writer, supported func(Version) bool) (Version, error) {
	var hello [20]byte
	if _, err := io.ReadFull(r, hello[:]); err != nil {
		return Version{}, fmt.Errorf("reading bolt handshake: %w", err)
	}
	if binary.BigEndian.Uint32(hello[:4]) != Magic {
		return Version{}, fmt.Errorf("bolt: bad magic %#08x", binary.BigEndian.Uint32(hello[:4]))
	}
	v, ok := choose(hello[4:], supported)
	var answer [4]byte
	if ok {
		answer[2], answer[3] = v.Minor, v.Major
	}
	if _, err := w.Write(answer[:]); err != nil {
		return Version{}, fmt.Errorf("answering bolt handshake: %w", err)
	}
	if !ok {
		return Version{}, ErrNoVersion
	}
	return v, nil
}

// choose picks from four proposals of the form [0, range, minor, major]:
// range is how many minor versions below minor the client also speaks.
func choose(proposals []byte, supported func(Version) bool) (Version, bool) {
	for p := proposals; len(p) >= 4; p = p[4:] {
		back, minor, major := int(p[1]), int(p[2]), p[3]
		if major == 0 || major == manifestMajor {
			continue
		}
		for m := minor; m >= max(minor-back, 0); m-- {
			if v := (Version{Major: major, Minor: byte(m)}); supported(v) {
				return v, true
			}
		}
	}
	return Version{}, false
}

// MaxMessage bounds one message's size on reading, chunks and all.
const MaxMessage = 1 << 20

// ReadMessage reads one chunked message and decodes it as a structure.
// Empty chunks before a message (NOOP keep-alives) are skipped.
func ReadMessage(r *bufio.Reader) (Struct, error) {
	var msg []byte
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if len(msg) > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Struct{}, err
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n == 0 {
			if len(msg) == 0 {
				continue // NOOP
			}
			break
		}
		if len(msg)+n > MaxMessage {
			return Struct{}, fmt.Errorf("bolt: message larger than %d bytes", MaxMessage)
		}
		start := len(msg)
		msg = append(msg, make([]byte, n)...)
		if _, err := io.ReadFull(r, msg[start:]); err != nil {
			return Struct{}, fmt.Errorf("reading bolt chunk: %w", err)
		}
	}
	v, rest, err := Unpack(msg)
	if err != nil {
		return Struct{}, err
	}
	s, ok := v.(Struct)
	if !ok || len(rest) != 0 {
		return Struct{}, errors.New("bolt: a message is one structure")
	}
	return s, nil
}

// maxChunk is the largest chunk the 16-bit length allows.
const maxChunk = 0xFFFF

// AppendMessage appends the message tag(fields...) to b in chunks, ending
// with the zero chunk.
func AppendMessage(b []byte, tag byte, fields ...any) []byte {
	body := Append(nil, Struct{Tag: tag, Fields: fields})
	for len(body) > 0 {
		n := min(len(body), maxChunk)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
		b = append(b, body[:n]...)
		body = body[n:]
	}
	return append(b, 0, 0)
}

// Failure is the metadata of a FAILURE message. Drivers read the status
// code from "code" before Bolt 5.7 and from "neo4j_code" since (the
// JavaScript driver looks nowhere else), so it goes under both names.
func Failure(code, message string) map[string]any {
	return map[string]any{"code": code, "neo4j_code": code, "message": message}
}

// Message tags, requests then responses.
const (
	MsgHello     = 0x01
	MsgGoodbye   = 0x02
	MsgReset     = 0x0F
	MsgRun       = 0x10
	MsgBegin     = 0x11
	MsgCommit    = 0x12
	MsgRollback  = 0x13
	MsgDiscard   = 0x2F
	MsgPull      = 0x3F
	MsgTelemetry = 0x54
	MsgRoute     = 0x66
	MsgLogon     = 0x6A
	MsgLogoff    = 0x6B

	MsgSuccess = 0x70
	MsgRecord  = 0x71
	MsgIgnored = 0x7E
	MsgFailure = 0x7F
)
