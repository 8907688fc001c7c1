// Package bolt speaks the server side of just enough of the Bolt protocol
// for the demo's fake instances and for the ingress's explained refusals:
// the version handshake, chunked messages and PackStream values. It is no
// database: it frames, encodes and decodes.
package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
)

// Struct is a PackStream structure: a tag byte and its fields. Every Bolt
// message is one.
type Struct struct {
	Tag    byte
	Fields []any
}

// maxDepth bounds nesting while decoding, so that a hostile message of
// nested lists cannot exhaust the stack.
const maxDepth = 32

var errTruncated = errors.New("packstream: truncated value")

// Append encodes v after b. It takes nil, bool, the integer types, float64,
// string, []byte, []any, []string, map[string]any, map[string]string and
// Struct; anything else is a programming error and panics.
func Append(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, 0xC0)
	case bool:
		if v {
			return append(b, 0xC3)
		}
		return append(b, 0xC2)
	case int:
		return appendInt(b, int64(v))
	case int64:
		return appendInt(b, v)
	case int32:
		return appendInt(b, int64(v))
	case float64:
		return binary.BigEndian.AppendUint64(append(b, 0xC1), math.Float64bits(v))
	case string:
		b = appendHeader(b, 0x80, 0xD0, len(v))
		return append(b, v...)
	case []byte:
		b = appendHeader(b, 0, 0xCC, len(v)) // bytes have no tiny form
		return append(b, v...)
	case []any:
		b = appendHeader(b, 0x90, 0xD4, len(v))
		for _, e := range v {
			b = Append(b, e)
		}
		return b
	case []string:
		b = appendHeader(b, 0x90, 0xD4, len(v))
		for _, e := range v {
			b = Append(b, e)
		}
		return b
	case map[string]any:
		b = appendHeader(b, 0xA0, 0xD8, len(v))
		for _, k := range sortedKeys(v) {
			b = Append(Append(b, k), v[k])
		}
		return b
	case map[string]string:
		b = appendHeader(b, 0xA0, 0xD8, len(v))
		for _, k := range sortedKeys(v) {
			b = Append(Append(b, k), v[k])
		}
		return b
	case Struct:
		if len(v.Fields) > 15 {
			panic("packstream: struct with more than 15 fields")
		}
		b = append(b, 0xB0|byte(len(v.Fields)), v.Tag)
		for _, f := range v.Fields {
			b = Append(b, f)
		}
		return b
	default:
		panic(fmt.Sprintf("packstream: cannot encode %T", v))
	}
}

// sortedKeys gives maps a stable encoding, which keeps tests byte-exact.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= -16 && v <= 127:
		return append(b, byte(int8(v)))
	case v >= math.MinInt8 && v <= math.MaxInt8:
		return append(b, 0xC8, byte(int8(v)))
	case v >= math.MinInt16 && v <= math.MaxInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xC9), uint16(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xCA), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xCB), uint64(v))
	}
}

// appendHeader writes a size marker: the tiny form (tiny|n) for n < 16 when
// the type has one, else the 8-, 16- or 32-bit form starting at marker8.
func appendHeader(b []byte, tiny, marker8 byte, n int) []byte {
	switch {
	case tiny != 0 && n < 16:
		return append(b, tiny|byte(n))
	case n <= math.MaxUint8:
		return append(b, marker8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, marker8+1), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, marker8+2), uint32(n))
	}
}

// Unpack decodes one value from b and returns it with the bytes after it.
// Integers come back as int64, lists as []any, maps as map[string]any,
// structures as Struct.
func Unpack(b []byte) (any, []byte, error) {
	return unpack(b, 0)
}

func unpack(b []byte, depth int) (any, []byte, error) {
	if depth > maxDepth {
		return nil, nil, errors.New("packstream: nested too deeply")
	}
	if len(b) == 0 {
		return nil, nil, errTruncated
	}
	m, b := b[0], b[1:]
	switch {
	case m <= 0x7F:
		return int64(m), b, nil
	case m >= 0xF0:
		return int64(int8(m)), b, nil
	case m&0xF0 == 0x80:
		return unpackString(b, int(m&0x0F))
	case m&0xF0 == 0x90:
		return unpackList(b, int(m&0x0F), depth)
	case m&0xF0 == 0xA0:
		return unpackMap(b, int(m&0x0F), depth)
	case m&0xF0 == 0xB0:
		return unpackStruct(b, int(m&0x0F), depth)
	}
	switch m {
	case 0xC0:
		return nil, b, nil
	case 0xC2, 0xC3:
		return m == 0xC3, b, nil
	case 0xC1:
		if len(b) < 8 {
			return nil, nil, errTruncated
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:], nil
	case 0xC8, 0xC9, 0xCA, 0xCB:
		size := 1 << (m - 0xC8)
		if len(b) < size {
			return nil, nil, errTruncated
		}
		var v int64
		switch size {
		case 1:
			v = int64(int8(b[0]))
		case 2:
			v = int64(int16(binary.BigEndian.Uint16(b)))
		case 4:
			v = int64(int32(binary.BigEndian.Uint32(b)))
		default:
			v = int64(binary.BigEndian.Uint64(b))
		}
		return v, b[size:], nil
	case 0xCC, 0xCD, 0xCE:
		n, rest, err := size(b, m-0xCC)
		if err != nil {
			return nil, nil, err
		}
		if len(rest) < n {
			return nil, nil, errTruncated
		}
		return append([]byte(nil), rest[:n]...), rest[n:], nil
	case 0xD0, 0xD1, 0xD2:
		n, rest, err := size(b, m-0xD0)
		if err != nil {
			return nil, nil, err
		}
		return unpackString(rest, n)
	case 0xD4, 0xD5, 0xD6:
		n, rest, err := size(b, m-0xD4)
		if err != nil {
			return nil, nil, err
		}
		return unpackList(rest, n, depth)
	case 0xD8, 0xD9, 0xDA:
		n, rest, err := size(b, m-0xD8)
		if err != nil {
			return nil, nil, err
		}
		return unpackMap(rest, n, depth)
	}
	return nil, nil, fmt.Errorf("packstream: unknown marker 0x%02X", m)
}

// size reads an 8-, 16- or 32-bit length (width 0, 1, 2).
func size(b []byte, width byte) (int, []byte, error) {
	n := 1 << width
	if len(b) < n {
		return 0, nil, errTruncated
	}
	switch width {
	case 0:
		return int(b[0]), b[1:], nil
	case 1:
		return int(binary.BigEndian.Uint16(b)), b[2:], nil
	default:
		return int(binary.BigEndian.Uint32(b)), b[4:], nil
	}
}

func unpackString(b []byte, n int) (any, []byte, error) {
	if n < 0 || len(b) < n {
		return nil, nil, errTruncated
	}
	return string(b[:n]), b[n:], nil
}

func unpackList(b []byte, n int, depth int) (any, []byte, error) {
	// Every element takes at least a byte: a length beyond the input is a
	// lie, and must not size an allocation.
	if n < 0 || n > len(b) {
		return nil, nil, errTruncated
	}
	list := make([]any, n)
	for i := range list {
		var err error
		if list[i], b, err = unpack(b, depth+1); err != nil {
			return nil, nil, err
		}
	}
	return list, b, nil
}

func unpackMap(b []byte, n int, depth int) (any, []byte, error) {
	if n < 0 || 2*n > len(b) {
		return nil, nil, errTruncated
	}
	m := make(map[string]any, n)
	for range n {
		k, rest, err := unpack(b, depth+1)
		if err != nil {
			return nil, nil, err
		}
		key, ok := k.(string)
		if !ok {
			return nil, nil, fmt.Errorf("packstream: map key is %T, not a string", k)
		}
		if m[key], b, err = unpack(rest, depth+1); err != nil {
			return nil, nil, err
		}
	}
	return m, b, nil
}

func unpackStruct(b []byte, n int, depth int) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errTruncated
	}
	s := Struct{Tag: b[0]}
	b = b[1:]
	if n > len(b) {
		return nil, nil, errTruncated
	}
	s.Fields = make([]any, n)
	for i := range s.Fields {
		var err error
		if s.Fields[i], b, err = unpack(b, depth+1); err != nil {
			return nil, nil, err
		}
	}
	return s, b, nil
}
