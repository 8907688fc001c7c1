package routing

import (
	"go.yaml.in/yaml/v3"

	"github.com/neo4j/private-ingress/internal/yamlutil"
)

// checkIsTable refuses a routes document that is not a table: empty (0
// bytes), only whitespace or comments, without the instances key, or with
// the key and no value. Writers that truncate before they write (cp,
// `echo >`, editors) leave such a file for a moment; taken as an empty
// table it would route nothing. An empty table is written explicitly:
// `instances: []`.
func checkIsTable(file string, root *yaml.Node) error {
	const hint = "an empty table is written `instances: []`; the last good table stays"
	list := &yamlutil.List{File: file}
	switch n := yamlutil.Value(root, "instances"); {
	case root == nil:
		list.Addf(nil, "no routes: the file is empty or holds only comments (%s)", hint)
	case n == nil:
		list.Addf(root, "no instances key (%s)", hint)
	case n.Tag == "!!null":
		list.Addf(n, "instances has no value (%s)", hint)
	}
	return list.Err()
}
