// Package config reads ingress.yaml: strict decoding (unknown keys are
// errors), defaults for everything optional, relative paths resolved against
// the file, and validation whose messages name the file and line. It
// produces each package's own section type; routes.yaml belongs to routing.
package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/fleet"
	"github.com/neo4j/private-ingress/internal/logging"
	"github.com/neo4j/private-ingress/internal/yamlutil"
	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// fileYAML is ingress.yaml as written.
type fileYAML struct {
	Domain        string                      `yaml:"domain"`
	Orchestras    []string                    `yaml:"orchestras"`
	Listeners     []ingress.ListenerConfig    `yaml:"listeners"`
	ProxyProtocol ingress.ProxyProtocolConfig `yaml:"proxy_protocol"`
	TLS           tlsconfig.Config            `yaml:"tls"`
	Routes        RoutesConfig                `yaml:"routes"`
	Backend       ingress.BackendConfig       `yaml:"backend"`
	Timeouts      ingress.Timeouts            `yaml:"timeouts"`
	Limits        ingress.Limits              `yaml:"limits"`
	Refusals      string                      `yaml:"refusals"`
	Admin         ingress.AdminConfig         `yaml:"admin"`
	DNS           dnsstub.Config              `yaml:"dns"`
	Log           logging.Config              `yaml:"log"`
}

// RoutesConfig says where the routing table comes from: a file, or etcd.
type RoutesConfig struct {
	File string        `yaml:"file"`
	Etcd *fleet.Config `yaml:"etcd"`

	// RevokeAfter is how long after a reload that took an open connection's
	// access away the connection is closed: 0s at once, -1s never.
	RevokeAfter time.Duration `yaml:"revoke_after"`
}

// Config is a validated ingress.yaml with defaults applied.
type Config struct {
	Path      string // the file it was read from
	Namespace routing.Namespace
	Ingress   ingress.Config
	Admin     ingress.AdminConfig
	TLS       tlsconfig.Config
	Routes    RoutesConfig // File is absolute or relative to the working directory
	DNS       dnsstub.Config
	Log       logging.Config
}

// Defaults of the sections this package owns; every other section's
// defaults belong to its package (ingress, tlsconfig, dnsstub, logging).
const (
	DefaultRoutesFile = "routes.yaml"
)

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// LoadDNSOnly is Load for `ingress dns`, which serves no TLS: the
// certificates may be absent.
func LoadDNSOnly(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return parse(path, data, true)
}

// Parse validates a config document read from path. Every problem found is
// reported at once, as yamlutil.Errors.
func Parse(path string, data []byte) (*Config, error) { return parse(path, data, false) }

func parse(path string, data []byte, dnsOnly bool) (*Config, error) {
	var raw fileYAML
	root, err := yamlutil.Decode(path, data, &raw)
	if err != nil {
		return nil, err
	}
	v := validator{List: yamlutil.List{File: path}, root: root, dir: filepath.Dir(path), dnsOnly: dnsOnly}
	cfg := v.build(&raw)
	if err := v.Err(); err != nil {
		return nil, err
	}
	cfg.Path = path
	return cfg, nil
}

type validator struct {
	yamlutil.List
	root    *yaml.Node
	dir     string
	dnsOnly bool // validating for `ingress dns`: no TLS needed
}

// at points at a key path, or as close to it as the document goes.
func (v *validator) at(keys ...string) *yaml.Node { return yamlutil.Path(v.root, keys...) }

func (v *validator) build(raw *fileYAML) *Config {
	cfg := &Config{}
	cfg.Namespace = v.namespace(raw)
	cfg.Ingress.Listeners = v.listeners(raw.Listeners)
	cfg.Ingress.ProxyProtocol = v.proxyProtocol(raw.ProxyProtocol)
	cfg.TLS = v.tls(raw)
	cfg.Routes = v.routes(raw.Routes)
	cfg.Ingress.RevokeAfter = ingressRevokeAfter(cfg.Routes.RevokeAfter)
	cfg.Ingress.Backend = v.backend(raw.Backend)
	cfg.Ingress.Timeouts = v.timeouts(raw.Timeouts)
	cfg.Ingress.Limits = v.limits(raw.Limits)
	cfg.Ingress.Refusals = raw.Refusals
	if cfg.Ingress.Refusals == "" {
		cfg.Ingress.Refusals = ingress.DefaultRefusals
	}
	if _, err := ingress.ParseRefusals(raw.Refusals); err != nil {
		v.Addf(v.at("refusals"), "%v", err)
	}
	cfg.Admin = raw.Admin
	if cfg.Admin.Address == "" {
		cfg.Admin.Address = ingress.DefaultAdminAddress
	}
	cfg.Admin.Address = v.expandEnv(cfg.Admin.Address, "admin", "address")
	if err := checkListenAddr(cfg.Admin.Address); err != nil {
		v.Addf(v.at("admin", "address"), "admin address %q: %v", cfg.Admin.Address, err)
	}
	cfg.DNS = v.dns(raw.DNS)
	cfg.Log = raw.Log.WithDefaults()
	if err := cfg.Log.CheckLevel(); err != nil {
		v.Addf(v.at("log", "level"), "%v", err)
	}
	if err := cfg.Log.CheckFormat(); err != nil {
		v.Addf(v.at("log", "format"), "%v", err)
	}
	return cfg
}

func (v *validator) namespace(raw *fileYAML) routing.Namespace {
	ns := routing.Namespace{Domain: strings.ToLower(strings.TrimSuffix(raw.Domain, "."))}
	if raw.Domain == "" {
		ns.Domain = routing.DefaultDomain
	}
	if !isDomain(ns.Domain) {
		v.Addf(v.at("domain"), "domain %q is not a DNS name", raw.Domain)
	}
	if len(raw.Orchestras) == 0 {
		v.Addf(v.at("orchestras"), "orchestras: at least one orchestra must be served, e.g. [\"0000\"]")
	}
	for i, o := range raw.Orchestras {
		o = strings.ToLower(o)
		node := yamlutil.Item(v.at("orchestras"), i)
		if !routing.ValidLabel("production-orch-" + o) {
			v.Addf(node, "orchestra %q cannot form a name production-orch-<orch>.%s", o, ns.Domain)
		}
		if slices.Contains(ns.Orchestras, o) {
			v.Addf(node, "orchestra %q is listed twice", o)
		}
		ns.Orchestras = append(ns.Orchestras, o)
	}
	return ns
}

func (v *validator) listeners(raw []ingress.ListenerConfig) []ingress.ListenerConfig {
	if len(raw) == 0 {
		return ingress.DefaultListeners()
	}
	listeners := slices.Clone(raw)
	addrs := map[string]int{}
	for i, l := range raw {
		node := yamlutil.Item(v.at("listeners"), i)
		if absent(yamlutil.Value(node, "alpn")) {
			// No alpn key: the service's default list, as if the listener
			// were one of the defaults. alpn: [] offers none.
			for _, d := range ingress.DefaultListeners() {
				if d.Service == l.Service {
					l.ALPN = d.ALPN
					listeners[i].ALPN = d.ALPN
				}
			}
		}
		if _, ok := routing.ParseService(l.Service); !ok {
			v.Addf(yamlutil.Path(node, "service"), "unknown service %q (known: %s)", l.Service, strings.Join(routing.ServiceNames(), ", "))
		}
		if err := checkListenAddr(l.Address); err != nil {
			v.Addf(yamlutil.Path(node, "address"), "listener address %q: %v", l.Address, err)
		} else if first, dup := addrs[l.Address]; dup && !strings.HasSuffix(l.Address, ":0") {
			v.Addf(yamlutil.Path(node, "address"), "listener address %q is already used by listener %d", l.Address, first+1)
		} else {
			addrs[l.Address] = i
		}
		for j, p := range l.ALPN {
			if p == "" || len(p) > 255 {
				v.Addf(yamlutil.Item(yamlutil.Path(node, "alpn"), j), "alpn protocol %q must be 1 to 255 bytes", p)
			}
		}
		if l.Service == "arrow" && !slices.Contains(l.ALPN, "h2") {
			v.Addf(yamlutil.Path(node, "alpn"), "the arrow listener must offer h2 in alpn: gRPC clients refuse a connection without it")
		}
	}
	return listeners
}

func (v *validator) proxyProtocol(pp ingress.ProxyProtocolConfig) ingress.ProxyProtocolConfig {
	if pp.Mode == "" {
		pp.Mode = "off"
	}
	mode, err := ingress.ParseProxyMode(pp.Mode)
	if err != nil {
		v.Addf(v.at("proxy_protocol", "mode"), "%v", err)
	} else if mode != ingress.ProxyOff && len(pp.TrustedCIDRs) == 0 {
		v.Addf(v.at("proxy_protocol"), "proxy_protocol.mode %s needs trusted_cidrs: the load balancers' addresses, the only sources whose headers are believed", pp.Mode)
	}
	for i, c := range pp.TrustedCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			v.Addf(yamlutil.Item(v.at("proxy_protocol", "trusted_cidrs"), i), "bad CIDR %q in trusted_cidrs (want e.g. 10.0.0.0/8)", c)
		}
	}
	return pp
}

func (v *validator) tls(raw *fileYAML) tlsconfig.Config {
	c := raw.TLS
	v.acme(&c.ACME, raw)
	st := &c.SessionTickets
	v.duration(&st.Rotate, tlsconfig.DefaultTicketRotation, false, "tls", "session_tickets", "rotate")
	if st.Shared() {
		if raw.Routes.Etcd == nil {
			v.Addf(v.at("tls", "session_tickets", "keys_file"), "tls.session_tickets.keys_file %q needs routes.etcd: the etcd cluster it names", st.KeysFile)
		}
	} else {
		st.KeysFile = v.path(st.KeysFile)
	}
	if _, err := tlsconfig.KeyExchangeGroups(c.KeyExchange); err != nil {
		node := v.at("tls", "key_exchange")
		for i, name := range c.KeyExchange {
			if _, bad := tlsconfig.KeyExchangeGroup(name); bad != nil || slices.Index(c.KeyExchange, name) < i {
				node = yamlutil.Item(node, i) // point at the entry at fault
				break
			}
		}
		v.Addf(node, "tls.key_exchange: %v", err)
	}
	if c.KeyExchange != nil && len(c.KeyExchange) == 0 {
		v.Addf(v.at("tls", "key_exchange"), "tls.key_exchange is empty; leave it out for the default (%s)", strings.Join(tlsconfig.KeyExchangeNames(), ", "))
	}
	if len(c.Certificates) == 0 && !c.ACME.Enabled() && !v.dnsOnly {
		v.Addf(v.at("tls"), "tls.certificates: at least one certificate (cert and key PEM files) is needed, or tls.acme")
	}
	c.Certificates = slices.Clone(c.Certificates)
	for i := range c.Certificates {
		cf := &c.Certificates[i]
		if cf.Cert == "" || cf.Key == "" {
			v.Addf(yamlutil.Item(v.at("tls", "certificates"), i), "certificate needs both cert and key")
		}
		cf.Cert, cf.Key = v.path(cf.Cert), v.path(cf.Key)
	}
	return c
}

func (v *validator) acme(acme *tlsconfig.ACME, raw *fileYAML) {
	if !acme.Enabled() {
		provider := acme.DNSProvider != "" && acme.DNSProvider != tlsconfig.DefaultDNSProvider
		if acme.Email != "" || acme.CARoot != "" || provider || acme.RFC2136 != (tlsconfig.RFC2136{}) {
			v.Addf(v.at("tls", "acme"), "tls.acme has settings but no directory; set directory or remove the section")
		}
		return
	}
	if u, err := url.Parse(acme.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
		v.Addf(v.at("tls", "acme", "directory"), "tls.acme.directory %q must be an https:// URL", acme.Directory)
	}
	v.dnsProvider(acme, raw)
	if acme.Storage == "" {
		acme.Storage = tlsconfig.DefaultACMEStorage
	}
	if strings.HasPrefix(acme.Storage, tlsconfig.EtcdPrefix) {
		if raw.Routes.Etcd == nil {
			v.Addf(v.at("tls", "acme", "storage"), "tls.acme.storage %q needs routes.etcd: the etcd cluster it names", acme.Storage)
		}
	} else {
		acme.Storage = v.path(acme.Storage)
	}
	acme.CARoot = v.path(acme.CARoot)
}

// dnsProvider checks who publishes the DNS-01 challenges: the DNS stub
// needs dns.address; rfc2136 needs its own section, and the stub may run
// beside it or not.
func (v *validator) dnsProvider(acme *tlsconfig.ACME, raw *fileYAML) {
	if acme.DNSProvider == "" {
		acme.DNSProvider = tlsconfig.DefaultDNSProvider
	}
	section := yamlutil.Value(v.at("tls", "acme"), "rfc2136")
	switch acme.DNSProvider {
	case tlsconfig.DNSProviderStub:
		if raw.DNS.Address == "" && !v.dnsOnly {
			v.Addf(v.at("tls", "acme"), "tls.acme needs dns.address: the DNS-01 challenges are served by the DNS stub, which must be the zones' authority for the ACME server (or set dns_provider: rfc2136)")
		}
		if !absent(section) {
			v.Addf(section, "tls.acme.rfc2136 is set but dns_provider is %s: set dns_provider: rfc2136, or remove it", acme.DNSProvider)
		}
	case tlsconfig.DNSProviderRFC2136:
		if v.dnsOnly {
			return // `ingress dns` publishes no challenge, and may not be allowed to read the key
		}
		r := &acme.RFC2136
		r.TSIGSecretFile = v.path(r.TSIGSecretFile)
		for _, e := range r.Check() {
			node := yamlutil.Value(section, e.Key)
			if node == nil {
				node = v.at("tls", "acme", "rfc2136") // the key is missing: point at its section, or the nearest
			}
			v.Addf(node, "tls.acme.rfc2136.%s: %v", e.Key, e.Err)
		}
	default:
		v.Addf(v.at("tls", "acme", "dns_provider"), "tls.acme.dns_provider %q is not known (known: %s)",
			acme.DNSProvider, strings.Join(tlsconfig.DNSProviders(), ", "))
	}
}

func (v *validator) routes(r RoutesConfig) RoutesConfig {
	v.revokeAfter(&r.RevokeAfter)
	e := r.Etcd
	if e == nil {
		if r.File == "" {
			r.File = DefaultRoutesFile
		}
		r.File = v.path(r.File)
		return r
	}
	if r.File != "" {
		v.Addf(v.at("routes"), "routes: give file or etcd, not both")
	}
	if len(e.Endpoints) == 0 {
		v.Addf(v.at("routes", "etcd"), "routes.etcd.endpoints: at least one etcd endpoint, e.g. http://10.0.0.5:2379")
	}
	for i, ep := range e.Endpoints {
		if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" {
			v.Addf(yamlutil.Item(v.at("routes", "etcd", "endpoints"), i), "etcd endpoint %q must be http(s)://host:port", ep)
		}
	}
	if e.Prefix == "" {
		e.Prefix = fleet.DefaultPrefix
	}
	if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") {
		v.Addf(v.at("routes", "etcd", "prefix"), "routes.etcd.prefix %q must start and end with /", e.Prefix)
	}
	v.duration(&e.DialTimeout, ingress.DefaultDialTimeout, false, "routes", "etcd", "dial_timeout")
	if (e.TLS.Cert == "") != (e.TLS.Key == "") {
		v.Addf(v.at("routes", "etcd", "tls"), "routes.etcd.tls needs both cert and key, or neither")
	}
	e.TLS.CA, e.TLS.Cert, e.TLS.Key = v.path(e.TLS.CA), v.path(e.TLS.Cert), v.path(e.TLS.Key)
	return r
}

func (v *validator) backend(b ingress.BackendConfig) ingress.BackendConfig {
	v.duration(&b.DialTimeout, ingress.DefaultDialTimeout, false, "backend", "dial_timeout")
	t := &b.TLS
	for _, set := range [][2]string{{"ca", t.CA}, {"server_name", t.ServerName}, {"client_cert", t.ClientCert}, {"client_key", t.ClientKey}} {
		if set[1] != "" && !t.Enabled {
			v.Addf(v.at("backend", "tls", set[0]), "backend.tls.%s is set but backend.tls.enabled is false", set[0])
		}
	}
	if (t.ClientCert == "") != (t.ClientKey == "") {
		v.Addf(v.at("backend", "tls"), "backend.tls needs both client_cert and client_key, or neither")
	}
	t.CA, t.ClientCert, t.ClientKey = v.path(t.CA), v.path(t.ClientCert), v.path(t.ClientKey)
	return b
}

func (v *validator) timeouts(t ingress.Timeouts) ingress.Timeouts {
	v.duration(&t.Handshake, ingress.DefaultHandshakeTimeout, false, "timeouts", "handshake")
	v.duration(&t.Idle, 0, true, "timeouts", "idle")
	v.duration(&t.Park, ingress.DefaultParkAfter, true, "timeouts", "park")
	v.duration(&t.Drain, ingress.DefaultDrainTimeout, true, "timeouts", "drain")
	v.duration(&t.ShutdownDelay, 0, true, "timeouts", "shutdown_delay")
	return t
}

func (v *validator) limits(l ingress.Limits) ingress.Limits {
	switch {
	case absent(yamlutil.Value(v.at("limits"), "max_connections")):
		l.MaxConnections = ingress.DefaultMaxConnections
	case l.MaxConnections < 1:
		v.Addf(v.at("limits", "max_connections"), "limits.max_connections must be at least 1")
	}
	// Per source and per endpoint: 0 (the default) is no cap.
	for _, c := range []struct {
		key string
		n   int
	}{{"max_connections_per_source", l.MaxConnectionsPerSource}, {"max_connections_per_endpoint", l.MaxConnectionsPerEndpoint}} {
		if c.n < 0 {
			v.Addf(v.at("limits", c.key), "limits.%s must not be negative (0 is no cap)", c.key)
		}
	}
	// Explanations a second: 0 written out explains none (as refusals: alert).
	switch n := yamlutil.Value(v.at("limits"), "max_explained_per_second"); {
	case absent(n):
		l.MaxExplainedPerSecond = ingress.DefaultMaxExplainedPerSecond
	case l.MaxExplainedPerSecond < 0:
		v.Addf(n, "limits.max_explained_per_second must not be negative (0 explains no refusal)")
	case l.MaxExplainedPerSecond == 0:
		l.MaxExplainedPerSecond = ingress.ExplainNever
	}
	return l
}

func (v *validator) dns(d dnsstub.Config) dnsstub.Config {
	if absent(yamlutil.Value(v.at("dns"), "ttl")) {
		d.TTL = dnsstub.DefaultTTL
	}
	if d.Address != "" {
		if err := checkListenAddr(d.Address); err != nil {
			v.Addf(v.at("dns", "address"), "dns address %q: %v", d.Address, err)
		}
		if len(d.AnswerIPv4)+len(d.AnswerIPv6) == 0 {
			v.Addf(v.at("dns"), "dns: answer_ipv4 or answer_ipv6 must name the private endpoint's address")
		}
	}
	for i, ip := range d.AnswerIPv4 {
		if a, err := netip.ParseAddr(ip); err != nil || !a.Is4() {
			v.Addf(yamlutil.Item(v.at("dns", "answer_ipv4"), i), "answer_ipv4 %q is not an IPv4 address", ip)
		}
	}
	for i, ip := range d.AnswerIPv6 {
		if a, err := netip.ParseAddr(ip); err != nil || !a.Is6() || a.Is4In6() {
			v.Addf(yamlutil.Item(v.at("dns", "answer_ipv6"), i), "answer_ipv6 %q is not an IPv6 address", ip)
		}
	}
	for i, f := range d.Forward {
		if _, err := netip.ParseAddrPort(f); err != nil {
			v.Addf(yamlutil.Item(v.at("dns", "forward"), i), "forward %q must be ip:port, e.g. 10.0.0.2:53", f)
		}
	}
	switch n := yamlutil.Value(v.at("dns"), "allow"); {
	case absent(n):
		d.Allow = dnsstub.DefaultAllow()
	case len(d.Allow) == 0:
		v.Addf(n, "dns.allow is empty: no client could use forward; leave allow out for the default (loopback and the private ranges)")
	}
	for i, c := range d.Allow {
		if _, err := netip.ParsePrefix(c); err != nil {
			v.Addf(yamlutil.Item(v.at("dns", "allow"), i), "bad CIDR %q in dns.allow (want e.g. 10.0.0.0/8)", c)
		}
	}
	switch n := yamlutil.Value(v.at("dns"), "max_tcp_connections"); {
	case absent(n):
		d.MaxTCPConnections = dnsstub.DefaultMaxTCPConnections
	case d.MaxTCPConnections < 1:
		v.Addf(n, "dns.max_tcp_connections must be at least 1")
	}
	return d
}

// expandEnv replaces ${VAR} in a value with the environment's VAR: the
// admin address is the pod's own IP in Kubernetes (${POD_IP}:9090, from the
// downward API), which no config file can know. A variable that is not set
// is an error rather than an empty host, which would bind every address.
func (v *validator) expandEnv(value string, keys ...string) string {
	return os.Expand(value, func(name string) string {
		val, ok := os.LookupEnv(name)
		if !ok || val == "" {
			v.Addf(v.at(keys...), "%s names ${%s}, which is not set in the environment", strings.Join(keys, "."), name)
		}
		return val
	})
}

// duration applies a default to an absent duration and refuses negative ones.
func (v *validator) duration(d *time.Duration, def time.Duration, zeroOK bool, keys ...string) {
	node := yamlutil.Value(v.at(keys[:len(keys)-1]...), keys[len(keys)-1])
	name := strings.Join(keys, ".")
	switch {
	case absent(node):
		*d = def
	case *d < 0:
		v.Addf(node, "%s must not be negative", name)
	case *d == 0 && !zeroOK:
		v.Addf(node, "%s must be more than zero", name)
	}
}

// absent reports a key that is missing or has no value ("idle:"), which
// takes the default rather than zero.
func absent(n *yaml.Node) bool { return n == nil || n.Tag == "!!null" }

// path resolves p against the config file's directory.
func (v *validator) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(v.dir, p)
}

func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port or :port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

func isDomain(d string) bool {
	if len(d) == 0 || len(d) > 200 {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if !routing.ValidLabel(label) {
			return false
		}
	}
	return true
}
