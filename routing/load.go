package routing

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

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
	Paused    bool                `yaml:"paused" json:"paused,omitempty"`
	Endpoints []string            `yaml:"endpoints" json:"endpoints,omitempty"`
	Backends  map[string][]string `yaml:"backends" json:"backends"`
}

// validEndpoint accepts the endpoint ids the ingress reads from PROXY
// headers: an AWS VPC endpoint (vpce-[0-9a-z]+), an Azure Private Link
// LinkID (azure:[0-9]+), a GCP PSC connection id (psc:[0-9]+). By hand
// rather than a regexp: a reload checks 100,000s of them.
func validEndpoint(ep string) bool {
	digits := func(s string, lower bool) bool {
		for i := range len(s) {
			if c := s[i]; !('0' <= c && c <= '9' || lower && 'a' <= c && c <= 'z') {
				return false
			}
		}
		return s != ""
	}
	switch {
	case strings.HasPrefix(ep, "vpce-"):
		return digits(ep[len("vpce-"):], true)
	case strings.HasPrefix(ep, "azure:"):
		return digits(ep[len("azure:"):], false)
	case strings.HasPrefix(ep, "psc:"):
		return digits(ep[len("psc:"):], false)
	}
	return false
}

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
	if chunks, ok := parseFast(data); ok {
		if t := buildValid(ns, chunks, prev); t != nil {
			return t, nil
		}
	}
	return parseYAML(file, data, ns, prev)
}

// parseYAML is Parse through yaml.v3: any document, every error with its line.
func parseYAML(file string, data []byte, ns Namespace, prev *Table) (*Table, error) {
	var raw fileYAML
	root, err := yamlutil.Decode(file, data, &raw)
	if err != nil {
		return nil, err
	}
	if err := checkIsTable(file, root); err != nil {
		return nil, err
	}
	list := &yamlutil.List{File: file}
	specs := make([]spec, len(raw.Instances))
	addrs := 0
	for i, in := range raw.Instances {
		specs[i] = specOf(in)
		addrs += specs[i].addrs()
	}
	t := newTableFor(ns, len(specs), addrs)
	firstLine := make(map[string]int, len(specs))
	seq := yamlutil.Value(root, "instances")
	for i := range specs {
		yieldEvery(i)
		node := yamlutil.Item(seq, i)
		inst := t.build(list, node, &specs[i], prev)
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

// buildValid builds a table of the instances parseFast decoded, or returns
// nil if any is invalid or repeated: Parse then reports every problem, with
// its line, from the yaml.v3 path.
func buildValid(ns Namespace, chunks [][]spec, prev *Table) *Table {
	n, addrs := 0, 0
	for _, specs := range chunks {
		n += len(specs)
		for i := range specs {
			addrs += specs[i].addrs()
		}
	}
	t := newTableFor(ns, n, addrs)
	var list yamlutil.List
	for _, specs := range chunks {
		runtime.Gosched() // a chunk is 1,024 instances; see yieldEvery
		for i := range specs {
			inst := t.build(&list, nil, &specs[i], prev)
			key := inst.DBID + "." + inst.Orch
			if t.instances[key] != nil {
				return nil
			}
			t.instances[key] = inst
		}
	}
	if list.Err() != nil {
		return nil
	}
	return t
}

// yieldEvery lets other goroutines run every 1,024 instances of a reload.
// With one P (GOMAXPROCS=1, as the ingress runs on a small node) a reload
// of 100,000 instances would otherwise hold it for a whole scheduler slice
// at a time (10-20 ms) while connections wait; this bounds the wait to
// about a millisecond of reload work.
func yieldEvery(i int) {
	if i&1023 == 1023 {
		runtime.Gosched()
	}
}

// spec is one instance as build validates it: instanceYAML with its
// backends by service, so that a reload of 100,000 instances makes and
// searches no map per instance.
type spec struct {
	DBID, Orch string
	Public     bool
	Paused     bool
	Endpoints  []string
	Backends   [NumServices][]string
	listed     [NumServices]bool // the service has a backends key, maybe with an empty list
	unknown    []string          // backends keys that name no service, sorted
}

func specOf(in instanceYAML) spec {
	sp := spec{DBID: in.DBID, Orch: in.Orch, Public: in.Public, Paused: in.Paused, Endpoints: in.Endpoints}
	for name, addrs := range in.Backends {
		if svc, ok := ParseService(name); ok {
			sp.Backends[svc], sp.listed[svc] = addrs, true
		} else {
			sp.unknown = append(sp.unknown, name)
		}
	}
	slices.Sort(sp.unknown)
	return sp
}

// addrs counts the backend addresses of sp.
func (sp *spec) addrs() int {
	n := 0
	for _, list := range sp.Backends {
		n += len(list)
	}
	return n
}

// newTableFor returns an empty table with room for its instances and
// backend addresses: growing maps of 100,000 entries costs a reload a tenth
// of its time.
func newTableFor(ns Namespace, instances, addrs int) *Table {
	t := NewTable(ns)
	t.instances = make(map[string]*Instance, instances)
	t.backends = make(map[string]*Backend, addrs)
	return t
}

// build validates one instance as written, reporting problems at node, and
// returns it with its backends taken from t (and prev's health).
func (t *Table) build(list *yamlutil.List, node *yaml.Node, in *spec, prev *Table) *Instance {
	inst := &Instance{
		DBID:      strings.ToLower(in.DBID),
		Orch:      strings.ToLower(in.Orch),
		Public:    in.Public,
		Paused:    in.Paused,
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
		if !validEndpoint(ep) {
			list.Addf(yamlutil.Item(at("endpoints"), j), "endpoint %q is not vpce-<id>, azure:<linkid> or psc:<connid>", ep)
		}
	}
	// Services in a fixed order, so that errors read the same every run.
	for svc, name := range serviceNames {
		if !in.listed[svc] {
			continue
		}
		addrs := in.Backends[svc]
		bnode := yamlutil.Value(at("backends"), name)
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
	for _, name := range in.unknown {
		list.Addf(yamlutil.Value(at("backends"), name), "unknown service %q in backends (known: %s)", name, strings.Join(ServiceNames(), ", "))
	}
	return inst
}

// Entry is one instance as a route store holds it (an etcd value, say):
// decoded and validated once, cheap to build tables from.
type Entry struct {
	DBID, Orch string // lower case
	raw        instanceYAML
	spec       spec
}

// ReadEntries reads and validates one instance document per file, every
// file before returning: one wrong file (or two files of one instance)
// yields no entries, and the error names every file's problems.
func ReadEntries(files []string, ns Namespace) ([]Entry, error) {
	var entries []Entry
	var errs []error
	fileOf := make(map[string]string, len(files)) // by dbid.orch
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e, err := ParseEntry(file, data, ns)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if first, dup := fileOf[e.DBID+"."+e.Orch]; dup {
			errs = append(errs, fmt.Errorf("%s: instance %s in orch %s is also in %s", file, e.DBID, e.Orch, first))
			continue
		}
		fileOf[e.DBID+"."+e.Orch] = file
		entries = append(entries, e)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return entries, nil
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
	sp := specOf(in)
	inst := NewTable(ns).build(list, root, &sp, nil)
	if err := list.Err(); err != nil {
		return Entry{}, err
	}
	return Entry{DBID: inst.DBID, Orch: inst.Orch, raw: in, spec: sp}, nil
}

// JSON is the entry as a route store keeps it.
func (e Entry) JSON() []byte {
	b, _ := json.Marshal(e.raw) // plain strings, bools and lists
	return b
}

// Build makes a table of entries, which ParseEntry validated. An instance
// given twice keeps its first entry; the others are returned as dropped.
func Build(ns Namespace, entries []Entry, prev *Table) (t *Table, dropped []Entry) {
	addrs := 0
	for i := range entries {
		addrs += entries[i].spec.addrs()
	}
	t = newTableFor(ns, len(entries), addrs)
	var scratch yamlutil.List // already valid: nothing to report
	for i := range entries {
		yieldEvery(i)
		e := &entries[i]
		key := e.DBID + "." + e.Orch
		if t.instances[key] != nil {
			dropped = append(dropped, *e)
			continue
		}
		t.instances[key] = t.build(&scratch, nil, &e.spec, prev)
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
