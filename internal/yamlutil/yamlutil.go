// Package yamlutil decodes YAML documents strictly (unknown keys are errors)
// and reports every problem with the file and line it comes from, so that an
// operator reads "routes.yaml:12: ..." rather than a Go type name.
package yamlutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem found in a file, at a line (0 when unknown).
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errors is every problem found in one pass over a document, in line order.
type Errors []*Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// List collects the problems of one file as they are found, so that a user
// sees all of them at once instead of fixing one per run.
type List struct {
	File string
	errs Errors
}

// Addf records a problem at the line of n (n may be nil).
func (l *List) Addf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	l.errs = append(l.errs, &Error{File: l.File, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// Err returns the collected problems sorted by line, or nil.
func (l *List) Err() error {
	if len(l.errs) == 0 {
		return nil
	}
	sort.SliceStable(l.errs, func(i, j int) bool { return l.errs[i].Line < l.errs[j].Line })
	return l.errs
}

// Decode parses data as one YAML document, refuses keys that v's type does
// not declare, and decodes into v. It returns the document's root mapping
// (nil for an empty document) so that callers can point at lines while they
// validate. Errors are of type Errors.
func Decode(file string, data []byte, v any) (*yaml.Node, error) {
	list := &List{File: file}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		list.errs = append(list.errs, fromYAMLError(file, err)...)
		return nil, list.Err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		list.Addf(&extra, "a second YAML document (after ---) is not allowed; the file must hold one")
		return nil, list.Err()
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // empty document: all defaults
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	// Every walk below (ours, then yaml.v3's Decode) visits at most the
	// document as its aliases expand it: bound that first.
	budget := expansionLimit(countNodes(root))
	if over := checkExpansion(root, budget); over != nil {
		list.Addf(over, "document expands to more than %d nodes through aliases (anchors/aliases used as a bomb?)", budget)
		return nil, list.Err()
	}
	checkKeys(list, root, reflect.TypeOf(v), "", &budget)
	if err := list.Err(); err != nil {
		return root, err
	}
	if err := root.Decode(v); err != nil {
		list.errs = append(list.errs, fromYAMLError(file, err)...)
		return root, list.Err()
	}
	return root, nil
}

// Aliases: yaml.v3 parses `*a` into an AliasNode that points at the
// anchored node, so a few hundred bytes of nested aliases stand for
// billions of nodes ("billion laughs"). yaml.v3 only guards against that
// inside Decode; any walk over the yaml.Node tree that follows aliases
// must be bounded too. Decode counts the document's own nodes, then walks
// it as its aliases expand it and refuses it beyond expansionLimit, before
// anything else walks it. Value, Path and Item do not follow aliases: each
// looks at one node's own content.

// minExpansion and expansionRatio bound what a document of n nodes may
// expand to through aliases: max(minExpansion, expansionRatio×n) nodes, in
// the spirit of yaml.v3's allowedAliasRatio. A document without aliases
// expands to itself, so the bound never refuses one, however large.
// Legitimate reuse (a backends list or defaults mapping anchored once and
// aliased from every instance) stays within a few times the document: an
// alias is one node that stands for the few it points at. A bomb of S bytes
// has at most about S/2 nodes (a one-character item and its separator),
// so it is refused after at most about 5×S visits: ~125,000 for 25 KB,
// milliseconds.
const (
	minExpansion   = 10_000
	expansionRatio = 10
)

func expansionLimit(nodes int) int { return max(minExpansion, expansionRatio*nodes) }

// countNodes counts the nodes of the document as written: aliases count as
// one node each, not followed.
func countNodes(root *yaml.Node) int {
	n := 0
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n++
		stack = append(stack, top.Content...)
	}
	return n
}

// checkExpansion walks the document following aliases and stops once it
// has visited more than budget nodes. It then returns the alias of the
// document as written (the outermost one) whose expansion crossed the
// bound, to point the error at; nil if the whole expansion fits. Cyclic
// aliases (an anchor inside its own value) expand without end, and are
// refused the same way. The walk keeps its own stack: a chain of aliases
// as deep as the document is allowed does not grow the goroutine's.
func checkExpansion(root *yaml.Node, budget int) *yaml.Node {
	type visit struct{ n, via *yaml.Node } // via: the outermost alias followed
	stack := []visit{{n: root}}
	for seen := 0; len(stack) > 0; {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen++; seen > budget {
			if top.via == nil {
				return top.n // unreachable: a document fits its own bound
			}
			return top.via
		}
		if top.n.Kind == yaml.AliasNode && top.n.Alias != nil {
			via := top.via
			if via == nil {
				via = top.n
			}
			stack = append(stack, visit{top.n.Alias, via})
			continue
		}
		for i := len(top.n.Content) - 1; i >= 0; i-- { // in document order
			stack = append(stack, visit{top.n.Content[i], top.via})
		}
	}
	return nil
}

// Value returns the value node of key in mapping n, or nil.
func Value(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Path follows keys through nested mappings: Path(root, "backend", "tls").
// It returns the deepest node found, so that an error still points close to
// the problem when an optional section is absent.
func Path(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		v := Value(n, k)
		if v == nil {
			return n
		}
		n = v
	}
	return n
}

// Item returns the i-th element of sequence n, or n itself if there is none.
func Item(n *yaml.Node, i int) *yaml.Node {
	if n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}

var nodeType = reflect.TypeOf(yaml.Node{})

// checkKeys walks the document beside the Go type it will be decoded into
// and reports every mapping key the type does not have. yaml.v3's own
// KnownFields check only works through a Decoder and is lost once a
// document has been parsed into nodes, which we need for line numbers.
//
// It follows aliases, and so counts every node it visits against budget
// (what is left of the document's expansionLimit): Decode has checked the
// whole expansion fits, so the count is a guard that keeps this walk
// bounded whatever calls it.
func checkKeys(list *List, n *yaml.Node, t reflect.Type, where string, budget *int) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if *budget--; *budget < 0 {
		return
	}
	if n.Kind == yaml.AliasNode {
		if *budget--; *budget < 0 || n.Alias == nil {
			return
		}
		n = n.Alias
	}
	switch {
	case t == nodeType:
		return
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				names := make([]string, 0, len(fields))
				for name := range fields {
					names = append(names, name)
				}
				slices.Sort(names)
				list.Addf(k, "unknown key %q%s (known: %s)", k.Value, in(where), strings.Join(names, ", "))
				continue
			}
			checkKeys(list, val, f.Type, join(where, k.Value), budget)
		}
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			checkKeys(list, item, t.Elem(), fmt.Sprintf("%s[%d]", where, i), budget)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(list, n.Content[i+1], t.Elem(), join(where, n.Content[i].Value), budget)
		}
	}
	// Kind mismatches are left to yaml.v3, whose messages carry the line.
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	fields := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f
	}
	return fields
}

func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

func in(where string) string {
	if where == "" {
		return ""
	}
	return " in " + where
}

var (
	lineRE = regexp.MustCompile(`(?s)^(?:yaml: )?line (\d+): (.*)$`)
	// yaml.v3 reports parser errors (unlike scanner errors) at the 0-based
	// line of the enclosing construct: one line early for people.
	parserErrRE = regexp.MustCompile("^did not find expected (key|node content|'-' indicator|',' or '[}\\]]'|<document start>)")
	unmarshalRE = regexp.MustCompile("(?s)^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
)

// fromYAMLError turns yaml.v3's "line N: ..." messages into positioned
// errors that speak of YAML rather than Go types.
func fromYAMLError(file string, err error) Errors {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make(Errors, 0, len(msgs))
	for _, m := range msgs {
		e := &Error{File: file, Msg: strings.TrimPrefix(m, "yaml: ")}
		if sub := lineRE.FindStringSubmatch(m); sub != nil {
			e.Line, _ = strconv.Atoi(sub[1])
			e.Msg = sub[2]
			if parserErrRE.MatchString(e.Msg) {
				e.Line++
			}
		}
		// One error, one line: a tag or value yaml.v3 quotes raw may hold
		// a newline (a "!\n" tag, say), which would split the message.
		e.Msg = strings.ReplaceAll(readableUnmarshal(e.Msg), "\n", `\n`)
		out = append(out, e)
	}
	return out
}

// wantName says what a Go type is in YAML terms.
func wantName(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration (e.g. 10s)"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	}
	return "a mapping (key: value)"
}

var kindNames = map[string]string{
	"!!str": "a string", "!!int": "a number", "!!float": "a number", "!!bool": "a boolean",
	"!!seq": "a list", "!!map": "a mapping", "!!null": "nothing", "!!timestamp": "a timestamp",
}

// readableUnmarshal rewrites "cannot unmarshal !!str `5x` into time.Duration"
// as what a person editing the file needs to know.
func readableUnmarshal(msg string) string {
	sub := unmarshalRE.FindStringSubmatch(msg)
	if sub == nil {
		return msg
	}
	kind, value, goType := sub[1], strconv.Quote(sub[2]), sub[3]
	found := kindNames[kind]
	if found == "" {
		found = kind
	}
	switch {
	case sub[2] == "" && kind != "!!str":
		return fmt.Sprintf("want %s, found %s", wantName(goType), found)
	case goType == "time.Duration" && kind == "!!int":
		return fmt.Sprintf("%s is not a duration: give a unit, e.g. %ss", value, sub[2])
	case goType == "time.Duration":
		return fmt.Sprintf("%s is not a duration (e.g. 500ms, 10s, 1m30s)", value)
	case strings.HasPrefix(goType, "[]"):
		return fmt.Sprintf("want a list, found %s %s", found, value)
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, ".") && !strings.Contains(goType, "time."):
		return fmt.Sprintf("want a mapping (key: value), found %s", found)
	case goType == "bool":
		return fmt.Sprintf("%s is not true or false", value)
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return fmt.Sprintf("%s is not a whole number in range", value)
	case goType == "string":
		return fmt.Sprintf("want a string, found %s", found)
	}
	return msg
}
