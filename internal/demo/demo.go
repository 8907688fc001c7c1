// Package demo holds what `ingress demo` needs besides the ingress itself:
// fake database instances on loopback and the config files that route to
// them. It imports no other package of the project.
package demo

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// DBIDs returns the demo's databases, in orch 0000.
func DBIDs() []string { return []string{"abcd1234", "ef567890"} }

// Orch is the demo's orchestra.
const Orch = "0000"

// PrivateDBID is a database the demo lists as reachable only through a
// private endpoint. The demo has no load balancer to send one, so every
// connection to it is refused: it shows what a refusal looks like.
const PrivateDBID = "c0ffee01"

// privateEndpoint is the one endpoint PrivateDBID allows.
const privateEndpoint = "vpce-0demo000000000001"

// PausedDBID is a database the demo lists as paused: nothing is dialled,
// and clients are told it is paused.
const PausedDBID = "5ca1ab1e"

// DownDBID is a database whose backends refuse every connection: clients
// are told it is unavailable, in a way drivers retry.
const DownDBID = "deadbeef"

// Instance is one fake database instance and its backend addresses.
type Instance struct {
	DBID  string
	HTTP  string // HTTP/1.1 and cleartext HTTP/2: discovery JSON naming the instance
	Bolt  string // Bolt for the official drivers (see BoltServer)
	Arrow string // Arrow Flight over cleartext HTTP/2 (gRPC)
}

// Instances are running fake instances.
type Instances struct {
	List   []Instance
	lns    []net.Listener
	srvs   []*http.Server
	arrows []arrowServer
	bolts  []*BoltServer
	wg     sync.WaitGroup

	down    string // an address that refuses connections: DownDBID's backend
	closers []func() error
}

// Start runs a fake instance on 127.0.0.1 (ephemeral ports) for each dbid.
func Start(dbids []string) (*Instances, error) {
	in := &Instances{}
	down, closeDown, err := refusingAddr()
	if err != nil {
		return nil, fmt.Errorf("a refusing address for %s: %w", DownDBID, err)
	}
	in.down, in.closers = down, append(in.closers, closeDown)
	for _, id := range dbids {
		if err := in.start(id); err != nil {
			in.Close()
			return nil, fmt.Errorf("fake instance %s: %w", id, err)
		}
	}
	return in, nil
}

func (in *Instances) start(id string) error {
	var lns [3]net.Listener
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lns[i] = ln
		in.lns = append(in.lns, ln)
	}
	httpLn, boltLn, arrowLn := lns[0], lns[1], lns[2]
	srv := &http.Server{Handler: discovery(id), Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true) // the ingress offers h2 and passes bytes through
	in.srvs = append(in.srvs, srv)
	flight := newArrow(id)
	in.arrows = append(in.arrows, flight)
	in.wg.Go(func() { srv.Serve(httpLn) })
	bolt := NewBolt(id)
	in.bolts = append(in.bolts, bolt)
	in.wg.Go(func() { bolt.Serve(boltLn) })
	in.wg.Go(func() { flight.Serve(arrowLn) })
	in.List = append(in.List, Instance{DBID: id, HTTP: httpLn.Addr().String(), Bolt: boltLn.Addr().String(), Arrow: arrowLn.Addr().String()})
	return nil
}

// Close stops every fake instance.
func (in *Instances) Close() {
	for _, s := range in.srvs {
		s.Close()
	}
	for _, f := range in.arrows {
		f.Stop()
	}
	for _, l := range in.lns {
		l.Close()
	}
	for _, c := range in.closers {
		c()
	}
	in.wg.Wait()
}

// refusingAddr returns an address on 127.0.0.1 that refuses connections
// until closed: a port bound but never listened on, which no other socket
// can take meanwhile, as one picked by listening and closing could be.
func refusingAddr() (string, func() error, error) {
	syscall.ForkLock.RLock() // no exec inherits it before it is close-on-exec
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return "", nil, fmt.Errorf("socket: %w", err)
	}
	closeFD := func() error { return syscall.Close(fd) }
	var sa syscall.Sockaddr
	if err = syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err == nil {
		sa, err = syscall.Getsockname(fd)
	}
	if err != nil {
		closeFD()
		return "", nil, fmt.Errorf("bind: %w", err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), closeFD, nil
}

// discovery answers like a Neo4j HTTP discovery endpoint, naming the instance.
func discovery(dbid string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"bolt_routing":"neo4j://%[1]s:7687","bolt_direct":"bolt://%[1]s:7687","neo4j_version":"5-demo","neo4j_edition":"enterprise","instance":%[2]q,"protocol":%[3]q}`+"\n",
			strings.Split(host, ":")[0], dbid, r.Proto)
	})
}

// Ports are the demo's listening addresses.
type Ports struct {
	HTTPS, Bolt, HTTP, Arrow, Admin, DNS string
}

// DefaultPorts returns the fixed demo ports of DESIGN.md, all on 127.0.0.1.
func DefaultPorts() Ports {
	return Ports{
		HTTPS: "127.0.0.1:10443", Bolt: "127.0.0.1:17687", HTTP: "127.0.0.1:17474",
		Arrow: "127.0.0.1:18491", Admin: "127.0.0.1:19090", DNS: "127.0.0.1:10053",
	}
}

// RealPorts returns the production ports on every address, for connectivity
// checks that use the defaults (inside a network namespace, say).
func RealPorts() Ports {
	return Ports{HTTPS: ":443", Bolt: ":7687", HTTP: ":7474", Arrow: ":8491", Admin: "127.0.0.1:9090", DNS: ":53"}
}

// Advertise tells the instances the address drivers should use for Bolt
// (the ingress's bolt listener): their routing tables name their own FQDN
// on its port.
func (in *Instances) Advertise(boltAddr string) {
	_, port, err := net.SplitHostPort(boltAddr)
	if err != nil {
		return
	}
	for _, b := range in.bolts {
		b.Advertise(port)
	}
}

// WriteConfig writes dir/ingress.yaml and dir/routes.yaml for the running
// instances, using the certificate files cert and key, and returns the
// config's path. The files are ordinary config: `ingress serve -config`
// runs them too, as long as the instances are up.
func WriteConfig(dir string, p Ports, in *Instances, cert, key string) (string, error) {
	var routes strings.Builder
	routes.WriteString("# Written by `ingress demo`: the fake instances' backends.\ninstances:\n")
	for _, i := range in.List {
		fmt.Fprintf(&routes, "  - dbid: %s\n    orch: %q\n    public: true\n    backends:\n", i.DBID, Orch)
		fmt.Fprintf(&routes, "      https: [%q]\n      http: [%q]\n      bolt: [%q]\n      arrow: [%q]\n", i.HTTP, i.HTTP, i.Bolt, i.Arrow)
	}
	if len(in.List) > 0 {
		// Its backends are never dialled: only its endpoint may reach it.
		i := in.List[0]
		fmt.Fprintf(&routes, "  - dbid: %s\n    orch: %q\n    public: false\n    endpoints: [%q]\n    backends:\n", PrivateDBID, Orch, privateEndpoint)
		fmt.Fprintf(&routes, "      https: [%q]\n      http: [%q]\n      bolt: [%q]\n      arrow: [%q]\n", i.HTTP, i.HTTP, i.Bolt, i.Arrow)
		// Never dialled either: it is paused.
		fmt.Fprintf(&routes, "  - dbid: %s\n    orch: %q\n    public: true\n    paused: true\n    backends:\n", PausedDBID, Orch)
		fmt.Fprintf(&routes, "      https: [%q]\n      http: [%q]\n      bolt: [%q]\n      arrow: [%q]\n", i.HTTP, i.HTTP, i.Bolt, i.Arrow)
	}
	if in.down != "" {
		d := in.down
		fmt.Fprintf(&routes, "  - dbid: %s\n    orch: %q\n    public: true\n    backends:\n", DownDBID, Orch)
		fmt.Fprintf(&routes, "      https: [%q]\n      http: [%q]\n      bolt: [%q]\n      arrow: [%q]\n", d, d, d, d)
	}
	cfg := fmt.Sprintf(`# Written by `+"`ingress demo`"+`.
domain: neo4j.io
orchestras: [%q]
listeners:
  - {service: https, address: %q, alpn: ["h2", "http/1.1"]}
  - {service: bolt,  address: %q}
  - {service: http,  address: %q, alpn: ["h2", "http/1.1"]}
  - {service: arrow, address: %q, alpn: ["h2"]}
tls:
  certificates: [{cert: %q, key: %q}]
routes: {file: routes.yaml}
timeouts: {handshake: 10s, idle: 0s, drain: 5s}
admin: {address: %q}
dns: {address: %q, answer_ipv4: ["127.0.0.1"], ttl: 5}
log: {level: info, format: console}
`, Orch, p.HTTPS, p.Bolt, p.HTTP, p.Arrow, filepath.Base(cert), filepath.Base(key), p.Admin, p.DNS)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	path := filepath.Join(dir, "ingress.yaml")
	err := errors.Join(
		os.WriteFile(filepath.Join(dir, "routes.yaml"), []byte(routes.String()), 0o644),
		os.WriteFile(path, []byte(cfg), 0o644),
	)
	return path, err
}
