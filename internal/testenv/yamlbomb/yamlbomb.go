// Package yamlbomb writes YAML documents that use anchors and aliases to
// blow up in size when expanded (billion laughs), for the tests that
// check every YAML input refuses them. Tests only.
package yamlbomb

import (
	"fmt"
	"strings"
)

// List is n copies of item as a flow sequence's body: "a, a, a".
func List(item string, n int) string {
	return strings.TrimSuffix(strings.Repeat(item+", ", n), ", ")
}

// Laughs is the billion-laughs chain as one flow sequence: &l0 holds
// width copies of leaf, each &lN width aliases of &l(N-1), so that it
// expands to width^(depth+1) leaves.
func Laughs(width, depth int, leaf string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[&l0 [%s]", List(leaf, width))
	for d := 1; d <= depth; d++ {
		fmt.Fprintf(&b, ", &l%d [%s]", d, List(fmt.Sprintf("*l%d", d-1), width))
	}
	b.WriteString("]")
	return b.String()
}
