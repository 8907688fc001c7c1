package routing

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/neo4j/private-ingress/internal/yamlutil"
)

// fileYAML is routes.yaml as written.
type fileYAML struct {
	Instances []instanceYAML `yaml:"instances"`
}

type instanceYAML struct {
	DBID      string              `yaml:"dbid" json:"dbid"`
	Orch      string              `yaml:"orch" json:"orch"`
	Public    bool                `yaml:"public" json:"public"`
	Endpoints []string            `yaml:"endpoints" json:"endpoints,omitempty"`
	Backends  map[string][]string `yaml:"backends" json:"backends"`
}

// endpointRE accepts the endpoint ids the ingress reads from PROXY headers:
// an AWS VPC endpoint, an Azure Private Link LinkID, a GCP PSC connection id.
var endpointRE = regexp.MustCompile(`^(vpce-[0-9a-z]+|azure:[0-9]+|psc:[0-9]+)$`)

// LoadFile reads and parses the routes file at path. See Parse.
func LoadFile(path string, ns Namespace, prev *Table) (*Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading routes: %w", err)
	}
	return Parse(path, data, ns, prev)
}

// Parse builds a table from a routes document. Every problem is reported, as
// yamlutil.Errors with file:line positions. If prev is not nil, backends
// whose address is unchanged keep their health state.
func Parse(file string, data []byte, ns Namespace, prev *Table) (*Table, error) {
	var raw fileYAML
	root, err := yamlutil.Decode(file, data, &raw)
	if err != nil {
		return nil, err
	}
	list := &yamlutil.List{File: file}
	t := NewTable(ns)
	t.instances = make(map[string]*Instance, len(raw.Instances))
	firstLine := make(map[string]int, len(raw.Instances))
	seq := yamlutil.Value(root, "instances")
	for i, in := range raw.Instances {
		node := yamlutil.Item(seq, i)
		inst := t.build(list, node, in, prev)
		key := inst.DBID + "." + inst.Orch
		if line, dup := firstLine[key]; dup {
			list.Addf(yamlutil.Path(node, "dbid"), "duplicate instance %s in orch %s (first defined at line %d)", inst.DBID, inst.Orch, line)
			continue
		}
		firstLine[key] = node.Line
		t.instances[key] = inst
	}
	if err := list.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// build validates one instance as written, reporting problems at node, and
// returns it with its backends taken from t (and prev's health).
func (t *Table) build(list *yamlutil.List, node *yaml.Node, in instanceYAML, prev *Table) *Instance {
	inst := &Instance{
		DBID:      strings.ToLower(in.DBID),
		Orch:      strings.ToLower(in.Orch),
		Public:    in.Public,
		Endpoints: in.Endpoints,
	}
	at := func(key string) *yaml.Node { return yamlutil.Path(node, key) }
	switch {
	case in.DBID == "":
		list.Addf(node, "instance has no dbid")
	case !isLabel(in.DBID):
		list.Addf(at("dbid"), "dbid %q is not a DNS label (letters, digits, hyphens; 1-63 characters)", in.DBID)
	}
	switch {
	case in.Orch == "":
		list.Addf(node, "instance %q has no orch", in.DBID)
	case !isLabel(orchPrefix + in.Orch):
		list.Addf(at("orch"), "orch %q cannot form the label %s<orch>", in.Orch, orchPrefix)
	case !t.serves(in.Orch):
		list.Addf(at("orch"), "orch %q is not served (orchestras: %s)", in.Orch, strings.Join(t.ns.Orchestras, ", "))
	}
	for j, ep := range in.Endpoints {
		if !endpointRE.MatchString(ep) {
			list.Addf(yamlutil.Item(at("endpoints"), j), "endpoint %q is not vpce-<id>, azure:<linkid> or psc:<connid>", ep)
		}
	}
	for name, addrs := range in.Backends {
		svc, ok := ParseService(name)
		bnode := yamlutil.Value(at("backends"), name)
		if !ok {
			list.Addf(bnode, "unknown service %q in backends (known: %s)", name, strings.Join(ServiceNames(), ", "))
			continue
		}
		if len(addrs) == 0 {
			list.Addf(bnode, "service %s has an empty backend list", name)
		}
		for j, addr := range addrs {
			if slices.Contains(addrs[:j], addr) {
				list.Addf(yamlutil.Item(bnode, j), "backend %q is listed twice for %s", addr, name)
				continue
			}
			if err := checkHostPort(addr); err != nil {
				list.Addf(yamlutil.Item(bnode, j), "backend %q: %v", addr, err)
				continue
			}
			inst.pools[svc].backends = append(inst.pools[svc].backends, t.backend(addr, prev))
		}
	}
	return inst
}

// Entry is one instance as a route store holds it (an etcd value, say):
// decoded and validated once, cheap to build tables from.
type Entry struct {
	DBID, Orch string // lower case
	raw        instanceYAML
}

// ParseEntry decodes and validates one instance document (YAML or JSON,
// the schema of one routes.yaml entry). name says where it came from in
// errors, as name:line.
func ParseEntry(name string, data []byte, ns Namespace) (Entry, error) {
	var in instanceYAML
	root, err := yamlutil.Decode(name, data, &in)
	if err != nil {
		return Entry{}, err
	}
	list := &yamlutil.List{File: name}
	inst := NewTable(ns).build(list, root, in, nil)
	if err := list.Err(); err != nil {
		return Entry{}, err
	}
	return Entry{DBID: inst.DBID, Orch: inst.Orch, raw: in}, nil
}

// JSON is the entry as a route store keeps it.
func (e Entry) JSON() []byte {
	b, _ := json.Marshal(e.raw) // plain strings, bools and lists
	return b
}

// Build makes a table of entries, which ParseEntry validated. An instance
// given twice keeps its first entry; the others are returned as dropped.
func Build(ns Namespace, entries []Entry, prev *Table) (t *Table, dropped []Entry) {
	t = NewTable(ns)
	t.instances = make(map[string]*Instance, len(entries))
	var scratch yamlutil.List // already valid: nothing to report
	for _, e := range entries {
		key := e.DBID + "." + e.Orch
		if t.instances[key] != nil {
			dropped = append(dropped, e)
			continue
		}
		t.instances[key] = t.build(&scratch, nil, e.raw, prev)
	}
	return t, dropped
}

// backend returns the Backend for addr, shared within t and taken over from
// prev when it had the same address.
func (t *Table) backend(addr string, prev *Table) *Backend {
	if b := t.backends[addr]; b != nil {
		return b
	}
	var b *Backend
	if prev != nil {
		b = prev.backends[addr]
	}
	if b == nil {
		b = &Backend{Addr: addr}
	}
	t.backends[addr] = b
	return b
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			return fmt.Errorf("no port (want host:port)")
		}
		return fmt.Errorf("want host:port: %w", err)
	}
	if host == "" {
		return fmt.Errorf("no host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}
