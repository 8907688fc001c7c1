package bolt

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestAppendEncodings(t *testing.T) {
	tests := []struct {
		name string
		v    any
		hex  string
	}{
		{"null", nil, "c0"},
		{"true", true, "c3"},
		{"false", false, "c2"},
		{"tiny int", 42, "2a"},
		{"tiny negative", -16, "f0"},
		{"int8", int64(-17), "c8ef"},
		{"int16", 1000, "c903e8"},
		{"int32", int64(100000), "ca000186a0"},
		{"int64", int64(math.MaxInt64), "cb7fffffffffffffff"},
		{"float", 1.5, "c13ff8000000000000"},
		{"tiny string", "abc", "83616263"},
		{"string8", strings.Repeat("a", 16), "d010" + strings.Repeat("61", 16)},
		{"bytes", []byte{1, 2}, "cc020102"},
		{"list", []any{int64(1), "a"}, "92018161"},
		{"strings", []string{"a"}, "918161"},
		{"map sorted", map[string]any{"b": 2, "a": 1}, "a2816101816202"},
		{"struct", Struct{Tag: MsgSuccess, Fields: []any{map[string]any{}}}, "b170a0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hex.EncodeToString(Append(nil, tt.v)); got != tt.hex {
				t.Errorf("Append(%v) = %s, want %s", tt.v, got, tt.hex)
			}
		})
	}
}

func TestUnpackRoundTrip(t *testing.T) {
	values := []any{
		nil, true, int64(0), int64(-16), int64(-17), int64(127), int64(128), int64(-129),
		int64(math.MinInt16), int64(math.MaxInt32), int64(math.MinInt64), 3.25,
		"", "é", strings.Repeat("x", 300), strings.Repeat("y", 70000), []byte("raw"),
		[]any{}, []any{int64(1), []any{"nested"}}, make([]any, 20),
		map[string]any{"k": map[string]any{"deep": []any{nil}}},
		Struct{Tag: 0x4E, Fields: []any{int64(1), []any{}, map[string]any{}}},
	}
	for _, v := range values {
		b := Append(nil, v)
		got, rest, err := Unpack(append(b, 0xFF))
		if err != nil {
			t.Errorf("Unpack(Append(%.20v)): %v", v, err)
			continue
		}
		if !reflect.DeepEqual(got, v) || !bytes.Equal(rest, []byte{0xFF}) {
			t.Errorf("round trip of %.20v = %.20v, rest %x", v, got, rest)
		}
	}
}

func TestUnpackRejects(t *testing.T) {
	deep := bytes.Repeat([]byte{0x91}, maxDepth+2)
	tests := []struct {
		name string
		hex  string
	}{
		{"empty", ""},
		{"unknown marker", "c4"},
		{"truncated string", "85616263"},
		{"truncated int64", "cb0102"},
		{"list longer than input", "d6ffffffff"},
		{"map longer than input", "daffffffff"},
		{"map key not a string", "a10101"},
		{"struct without tag", "b1"},
		{"too deep", hex.EncodeToString(deep)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := hex.DecodeString(tt.hex)
			if v, _, err := Unpack(b); err == nil {
				t.Errorf("Unpack(%s) = %v, want an error", tt.hex, v)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	speaks := func(v Version) bool { return v.Major == 5 && v.Minor <= 8 || v == Version{4, 4} }
	tests := []struct {
		name      string
		proposals string
		want      string // the 4-byte answer
		err       error
	}{
		// What the Go driver v5.28 and the JS driver 6.x send: manifest, 5.8–5.0, 4.4–4.2, 3.0.
		{"official drivers", "000001ff 00080805 00020404 00000003", "00000805", nil},
		{"range picks the highest we speak", "00040a05 00000000 00000000 00000000", "00000805", nil},
		{"older driver", "00000404 00000104 00000003 00000000", "00000404", nil},
		{"first proposal wins", "00000404 00000005 00000000 00000000", "00000404", nil},
		{"nothing in common", "00000003 00000002 00000001 00000000", "00000000", ErrNoVersion},
		{"manifest only", "000001ff 00000000 00000000 00000000", "00000000", ErrNoVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, _ := hex.DecodeString("6060b017" + strings.ReplaceAll(tt.proposals, " ", ""))
			var out bytes.Buffer
			_, err := Negotiate(bytes.NewReader(in), &out, speaks)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if got := hex.EncodeToString(out.Bytes()); got != tt.want {
				t.Errorf("answer = %s, want %s", got, tt.want)
			}
		})
	}
	t.Run("bad magic", func(t *testing.T) {
		var out bytes.Buffer
		in := append([]byte("GET / HTTP/1.1\r\n"), 0, 0, 0, 0)
		if _, err := Negotiate(bytes.NewReader(in), &out, speaks); err == nil || out.Len() != 0 {
			t.Errorf("HTTP instead of Bolt: err %v, answered %x", err, out.Bytes())
		}
	})
}

func TestMessageFraming(t *testing.T) {
	big := strings.Repeat("q", 3*maxChunk) // spans several chunks
	var wire []byte
	wire = append(wire, 0, 0) // a NOOP keep-alive first
	wire = AppendMessage(wire, MsgRun, big, map[string]any{"x": int64(1)}, map[string]any{})
	wire = AppendMessage(wire, MsgPull, map[string]any{"n": int64(-1)})
	r := bufio.NewReader(bytes.NewReader(wire))
	run, err := ReadMessage(r)
	if err != nil || run.Tag != MsgRun || run.Fields[0] != big {
		t.Fatalf("first message: tag %#x, err %v", run.Tag, err)
	}
	pull, err := ReadMessage(r)
	if err != nil || pull.Tag != MsgPull || !reflect.DeepEqual(pull.Fields, []any{map[string]any{"n": int64(-1)}}) {
		t.Fatalf("second message: %+v, %v", pull, err)
	}
	if _, err := ReadMessage(r); err != io.EOF {
		t.Errorf("after the last message: %v, want EOF", err)
	}
}

func TestReadMessageRejects(t *testing.T) {
	huge := bytes.Repeat(append([]byte{0xFF, 0xFF}, make([]byte, maxChunk)...), MaxMessage/maxChunk+1)
	tests := []struct {
		name string
		wire []byte
	}{
		{"larger than MaxMessage", huge},
		{"truncated chunk", []byte{0, 10, 0xB0}},
		{"no end marker", []byte{0, 2, 0xB0, 0x0F}},
		{"not a structure", []byte{0, 1, 0x01, 0, 0}},
		{"trailing bytes", []byte{0, 3, 0xB0, 0x0F, 0xC0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := ReadMessage(bufio.NewReader(bytes.NewReader(tt.wire))); err == nil {
				t.Errorf("ReadMessage = %+v, want an error", m)
			}
		})
	}
}

// FuzzReadMessage feeds raw bytes, as a client could send them, to the
// message reader: it must return a message or an error, never panic, and
// a message must survive re-encoding.
func FuzzReadMessage(f *testing.F) {
	f.Add(AppendMessage(nil, MsgHello, map[string]any{"user_agent": "fuzz", "routing": map[string]any{}}))
	f.Add(AppendMessage(nil, MsgRun, "RETURN $x", map[string]any{"x": []any{1.5, nil, true}}, map[string]any{}))
	f.Add([]byte{0, 3, 0xD6, 0xFF, 0xFF, 0, 0})
	f.Add([]byte{0, 0, 0, 1, 0xB1})
	f.Fuzz(func(t *testing.T, wire []byte) {
		m, err := ReadMessage(bufio.NewReader(bytes.NewReader(wire)))
		if err != nil {
			return
		}
		// Compared as bytes, not values: a NaN is not DeepEqual to itself.
		first := AppendMessage(nil, m.Tag, m.Fields...)
		again, err := ReadMessage(bufio.NewReader(bytes.NewReader(first)))
		if err != nil {
			t.Fatalf("re-encoded %+v does not read back: %v", m, err)
		}
		if second := AppendMessage(nil, again.Tag, again.Fields...); !bytes.Equal(first, second) {
			t.Fatalf("re-encoding is not stable: %x then %x", first, second)
		}
	})
}
