// Package yamlutil decodes YAML documents strictly (unknown keys are errors)
// and reports every problem with the file and line it comes from, so that an
// operator reads "routes.yaml:12: ..." rather than a Go type name.
package yamlutil

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
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
	if err := yaml.Unmarshal(data, &doc); err != nil {
		list.errs = append(list.errs, fromYAMLError(file, err)...)
		return nil, list.Err()
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // empty document: all defaults
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	checkKeys(list, root, reflect.TypeOf(v), "")
	if err := list.Err(); err != nil {
		return root, err
	}
	if err := root.Decode(v); err != nil {
		list.errs = append(list.errs, fromYAMLError(file, err)...)
		return root, list.Err()
	}
	return root, nil
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
func checkKeys(list *List, n *yaml.Node, t reflect.Type, where string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
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
			checkKeys(list, val, f.Type, join(where, k.Value))
		}
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			checkKeys(list, item, t.Elem(), fmt.Sprintf("%s[%d]", where, i))
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(list, n.Content[i+1], t.Elem(), join(where, n.Content[i].Value))
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

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// fromYAMLError turns yaml.v3's "line N: ..." messages into positioned errors.
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
		}
		out = append(out, e)
	}
	return out
}
