package routing

import "bytes"

// parseFast decodes routes.yaml in the shapes people and generators write
// it (block or one-line flow instances, plain or quoted scalars, comments)
// without yaml.v3. The general YAML parser takes about 15 µs an instance,
// so a 100,000-instance file took 1.5 s to reload; this takes well under a
// tenth of that. It never decides that a document is wrong: anything
// outside that shape (anchors, tags, escapes, multi-line scalars, unknown
// or repeated keys, tabs, CRLF, non-ASCII, ...) returns ok=false, and Parse
// takes the yaml.v3 path, which also gives every error its line.
// FuzzParseFast checks that what this accepts, yaml.v3 decodes the same.
//
// The instances come in chunks of specChunk: a reload never makes one
// allocation of tens of MB, which the runtime would zero without letting
// other goroutines run.
func parseFast(data []byte) (chunks [][]spec, ok bool) {
	// Bytes outside printable ASCII (tabs, CR, control characters, UTF-8)
	// are refused where they can appear: in quoted scalars and comments;
	// anywhere else no token takes them.
	p := &fastParser{rest: data}
	p.advance()
	if p.line == nil || p.ind != 0 {
		return nil, false
	}
	key, val, ok := splitKey(p.line)
	if !ok || string(key) != "instances" {
		return nil, false
	}
	p.advance()
	if len(val) > 0 {
		v, tail, ok := flowValue(val, 0)
		if !ok || !endOfLine(tail) || v.kind != kindList || len(v.list) != 0 || p.line != nil || p.bad {
			return nil, false
		}
		return [][]spec{}, true
	}
	if p.line == nil || !isItem(p.line) {
		return nil, false // instances: null, or not a list
	}
	seq := p.ind
	var chunk []spec
	for p.line != nil {
		if p.ind != seq || !isItem(p.line) {
			return nil, false
		}
		inst, ok := p.instance()
		if !ok {
			return nil, false
		}
		if len(chunk) == cap(chunk) {
			chunk = make([]spec, 0, specChunk)
			chunks = append(chunks, nil)
			yieldEvery(specChunk - 1)
		}
		chunk = append(chunk, inst)
		chunks[len(chunks)-1] = chunk
	}
	return chunks, !p.bad
}

// specChunk is how many instances parseFast puts in one allocation.
const specChunk = 1024

// fastParser walks a document line by line.
type fastParser struct {
	rest []byte // the input after the current line
	line []byte // the current line after its indentation; nil at the end
	ind  int    // the current line's indentation
	bad  bool   // a comment held a byte outside printable ASCII: the end, and not ok

	services [NumServices]fastEntry // blockBackends' entries, consumed at once by set
	orch     string                 // the last orch read: most files name one or two
}

// advance moves to the next line that is not blank or only a comment.
func (p *fastParser) advance() {
	for len(p.rest) > 0 {
		var l []byte
		if i := bytes.IndexByte(p.rest, '\n'); i >= 0 {
			l, p.rest = p.rest[:i], p.rest[i+1:]
		} else {
			l, p.rest = p.rest, nil
		}
		ind := 0
		for ind < len(l) && l[ind] == ' ' {
			ind++
		}
		if ind == len(l) {
			continue
		}
		if l[ind] == '#' {
			if !printable(l[ind:]) {
				p.bad = true
				break
			}
			continue
		}
		p.line, p.ind = l[ind:], ind
		return
	}
	p.line, p.ind = nil, 0
}

// instance parses one sequence item: a flow mapping on its line, or a
// block mapping whose first key follows the dash.
func (p *fastParser) instance() (spec, bool) {
	var inst spec
	var seen fieldSet
	spaces := 1
	for spaces < len(p.line) && p.line[spaces] == ' ' {
		spaces++
	}
	body := p.line[spaces:]
	if len(body) > 0 && body[0] == '{' {
		v, tail, ok := flowValue(body, 0)
		if !ok || v.kind != kindMap || !endOfLine(tail) {
			return inst, false
		}
		p.advance()
		for _, e := range v.entries {
			if !p.set(&inst, &seen, e.key, e.val) {
				return inst, false
			}
		}
		return inst, true
	}
	// The first key sits after the dash: read it as a line of its own at
	// its column, and the keys that follow must line up with it.
	col := p.ind + spaces
	p.line, p.ind = body, col
	for p.line != nil && p.ind == col {
		key, val, ok := splitKey(p.line)
		if !ok {
			return inst, false
		}
		var v fastValue
		switch {
		case len(val) > 0:
			var tail []byte
			if v, tail, ok = blockValue(val); !ok || !endOfLine(tail) {
				return inst, false
			}
			p.advance()
		case string(key) == "endpoints":
			p.advance()
			if v, ok = p.blockList(col); !ok {
				return inst, false
			}
		case string(key) == "backends":
			p.advance()
			if v, ok = p.blockBackends(col); !ok {
				return inst, false
			}
		default:
			return inst, false // an empty value: null, or a nested block
		}
		if !p.set(&inst, &seen, key, v) {
			return inst, false
		}
	}
	// What follows must be the next item (or the end), not a line indented
	// deeper than the keys: that would continue a value.
	return inst, p.line == nil || p.ind < col
}

// blockList parses the block sequence of a key at column col: "- scalar"
// lines indented deeper than the key, or level with it.
func (p *fastParser) blockList(col int) (fastValue, bool) {
	v := fastValue{kind: kindList, list: []string{}}
	if p.line == nil || p.ind < col || !isItem(p.line) {
		return v, false
	}
	ind := p.ind
	for p.line != nil && p.ind == ind && isItem(p.line) {
		s, tail, ok := blockScalar(trimSpaces(p.line[1:]))
		if !ok || !endOfLine(tail) {
			return v, false
		}
		v.list = append(v.list, string(s.raw))
		p.advance()
	}
	return v, p.line == nil || p.ind <= col
}

// blockBackends parses the block mapping of services under "backends:" at
// column col; each service has a flow list or a block list.
func (p *fastParser) blockBackends(col int) (fastValue, bool) {
	v := fastValue{kind: kindMap, entries: p.services[:0]}
	if p.line == nil || p.ind <= col {
		return v, false
	}
	ind := p.ind
	for p.line != nil && p.ind == ind {
		key, val, ok := splitKey(p.line)
		if !ok {
			return v, false
		}
		var list fastValue
		if len(val) > 0 {
			var tail []byte
			if list, tail, ok = flowValue(val, 1); !ok || list.kind != kindList || !endOfLine(tail) {
				return v, false
			}
			p.advance()
		} else {
			p.advance()
			if list, ok = p.blockList(ind); !ok {
				return v, false
			}
		}
		v.entries = append(v.entries, fastEntry{key, list})
	}
	return v, p.line == nil || p.ind <= col
}

// fastValue is a parsed value: a scalar, a list of scalars, or a mapping.
type fastValue struct {
	kind    byte
	raw     []byte // a scalar's text, in the document
	plain   bool   // an unquoted scalar, which YAML resolves by its text
	list    []string
	entries []fastEntry
}

const (
	kindScalar = iota + 1
	kindList
	kindMap
)

type fastEntry struct {
	key []byte
	val fastValue
}

// fieldSet is the keys an instance has set; a repeated key is left to
// yaml.v3, which refuses it.
type fieldSet uint8

// plainBool reports a boolean in one of the two spellings every YAML reads
// the same way.
func plainBool(v fastValue) bool {
	return v.kind == kindScalar && v.plain && (string(v.raw) == "true" || string(v.raw) == "false")
}

// set stores one key of an instance, if the key and the value's shape are
// what the schema says.
func (p *fastParser) set(in *spec, seen *fieldSet, key []byte, v fastValue) bool {
	var bit fieldSet
	switch string(key) {
	case "dbid":
		if bit = 1; v.kind != kindScalar {
			return false
		}
		in.DBID = string(v.raw)
	case "orch":
		if bit = 2; v.kind != kindScalar {
			return false
		}
		if string(v.raw) != p.orch {
			p.orch = string(v.raw)
		}
		in.Orch = p.orch
	case "public":
		if bit = 4; !plainBool(v) {
			return false
		}
		in.Public = string(v.raw) == "true"
	case "paused":
		if bit = 32; !plainBool(v) {
			return false
		}
		in.Paused = string(v.raw) == "true"
	case "endpoints":
		if bit = 8; v.kind != kindList {
			return false
		}
		in.Endpoints = v.list
	case "backends":
		if bit = 16; v.kind != kindMap {
			return false
		}
		for _, e := range v.entries {
			// An unknown service is an error; yaml.v3's path reports it.
			svc, ok := serviceIndex(e.key)
			if !ok || in.listed[svc] || e.val.kind != kindList {
				return false
			}
			in.Backends[svc], in.listed[svc] = e.val.list, true
		}
	default:
		return false
	}
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// serviceIndex is ParseService for a key in the document, without
// allocating a string for it.
func serviceIndex(key []byte) (Service, bool) {
	for i, name := range serviceNames {
		if string(key) == name {
			return Service(i), true
		}
	}
	return 0, false
}

// isItem reports whether a line is a block sequence item ("- ...").
func isItem(line []byte) bool {
	return len(line) > 1 && line[0] == '-' && line[1] == ' '
}

// splitKey splits "key: value" (the value may be empty, or a comment).
func splitKey(line []byte) (key, val []byte, ok bool) {
	i := 0
	for i < len(line) && (line[i] >= 'a' && line[i] <= 'z' || line[i] == '_') {
		i++
	}
	if i == 0 || i == len(line) || line[i] != ':' || i+1 < len(line) && line[i+1] != ' ' {
		return nil, nil, false
	}
	val = trimSpaces(line[i+1:])
	if len(val) > 0 && val[0] == '#' {
		if !printable(val) {
			return nil, nil, false
		}
		val = nil
	}
	return line[:i], val, true
}

// blockValue parses a value on a key's line: a scalar or a flow collection.
func blockValue(s []byte) (fastValue, []byte, bool) {
	if s[0] == '[' || s[0] == '{' {
		return flowValue(s, 0)
	}
	return blockScalar(s)
}

// blockScalar parses a scalar outside flow collections.
func blockScalar(s []byte) (fastValue, []byte, bool) {
	return scalar(s, false)
}

// flowValue parses a flow collection or scalar; depth bounds the nesting
// to what the schema has (an instance's backends map of lists).
func flowValue(s []byte, depth int) (fastValue, []byte, bool) {
	if len(s) == 0 || depth > 2 {
		return fastValue{}, nil, false
	}
	switch s[0] {
	case '[':
		v := fastValue{kind: kindList, list: []string{}}
		s = trimSpaces(s[1:])
		if len(s) > 0 && s[0] == ']' {
			return v, s[1:], true
		}
		for {
			item, rest, ok := scalar(s, true)
			if !ok {
				return v, nil, false
			}
			v.list = append(v.list, string(item.raw))
			var done bool
			if s, done, ok = flowNext(rest, ']'); !ok || done {
				return v, s, ok
			}
		}
	case '{':
		v := fastValue{kind: kindMap}
		s = trimSpaces(s[1:])
		if len(s) > 0 && s[0] == '}' {
			return v, s[1:], true
		}
		for {
			key, rest, ok := flowKey(s)
			if !ok {
				return v, nil, false
			}
			val, rest, ok := flowValue(rest, depth+1)
			if !ok {
				return v, nil, false
			}
			v.entries = append(v.entries, fastEntry{key, val})
			var done bool
			if s, done, ok = flowNext(rest, '}'); !ok || done {
				return v, s, ok
			}
		}
	}
	return scalar(s, true)
}

// flowNext reads what follows an item of a flow collection: its closing
// bracket (done, and rest is what follows it), or a comma and the next item.
func flowNext(s []byte, closing byte) (rest []byte, done, ok bool) {
	s = trimSpaces(s)
	switch {
	case len(s) > 0 && s[0] == closing:
		return s[1:], true, true
	case len(s) > 0 && s[0] == ',':
		return trimSpaces(s[1:]), false, true
	}
	return nil, false, false
}

// flowKey parses "key: " inside a flow mapping.
func flowKey(s []byte) ([]byte, []byte, bool) {
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] == '_') {
		i++
	}
	if i == 0 || i+1 >= len(s) || s[i] != ':' || s[i+1] != ' ' {
		return nil, nil, false
	}
	return s[:i], trimSpaces(s[i+2:]), true
}

// scalar parses a quoted scalar without escapes, or a plain one made of
// the characters of names, numbers and addresses. A plain scalar that YAML
// would read as null is refused: the fast path only takes the certain.
func scalar(s []byte, flow bool) (fastValue, []byte, bool) {
	if len(s) == 0 {
		return fastValue{}, nil, false
	}
	switch q := s[0]; q {
	case '"', '\'':
		for i := 1; i < len(s); i++ {
			switch c := s[i]; {
			case c < ' ' || c >= 0x7f:
				return fastValue{}, nil, false
			case c == '\\':
				if q == '"' {
					return fastValue{}, nil, false
				}
			case c == q:
				if q == '\'' && i+1 < len(s) && s[i+1] == '\'' {
					return fastValue{}, nil, false // '' is an escaped quote
				}
				return fastValue{kind: kindScalar, raw: s[1:i]}, s[i+1:], true
			}
		}
		return fastValue{}, nil, false
	}
	if !plainStart(s[0]) {
		return fastValue{}, nil, false
	}
	i := 1
	for i < len(s) && plainChar(s[i]) {
		if s[i] == ':' && (i+1 == len(s) || !plainChar(s[i+1])) {
			return fastValue{}, nil, false // "x:" ends a key, not a scalar
		}
		i++
	}
	if flow && i < len(s) && s[i] != ' ' && s[i] != ',' && s[i] != ']' && s[i] != '}' {
		return fastValue{}, nil, false
	}
	switch string(s[:i]) {
	case "null", "Null", "NULL":
		return fastValue{}, nil, false
	}
	return fastValue{kind: kindScalar, raw: s[:i], plain: true}, s[i:], true
}

func plainStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '/' || c == '_'
}

func plainChar(c byte) bool {
	return plainStart(c) || c == '-' || c == ':' || c == '@' || c == '+'
}

// endOfLine reports whether what is left of a line is nothing, or spaces
// and a comment.
func endOfLine(s []byte) bool {
	if len(s) == 0 {
		return true
	}
	if s[0] != ' ' {
		return false
	}
	s = trimSpaces(s)
	return len(s) == 0 || s[0] == '#' && printable(s)
}

// printable reports whether s is all printable ASCII.
func printable(s []byte) bool {
	for _, c := range s {
		if c < ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func trimSpaces(s []byte) []byte {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	return s
}
