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

	"gopkg.in/yaml.v3"

	"github.com/neo4j/private-ingress/dnsstub"
	"github.com/neo4j/private-ingress/ingress"
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
	Log           LogConfig                   `yaml:"log"`
}

// RoutesConfig says where the routing table comes from: a file, or etcd.
type RoutesConfig struct {
	File string      `yaml:"file"`
	Etcd *EtcdConfig `yaml:"etcd"`
}

// EtcdConfig is routes.etcd: the etcd cluster a fleet of replicas shares
// the routing table through.
type EtcdConfig struct {
	Endpoints   []string      `yaml:"endpoints"`    // http(s)://host:port
	Prefix      string        `yaml:"prefix"`       // keys are <prefix><orch>/<dbid>
	DialTimeout time.Duration `yaml:"dial_timeout"` // per connection attempt
	TLS         EtcdTLS       `yaml:"tls"`
}

// EtcdTLS is the client side of TLS to etcd; empty fields are not used.
type EtcdTLS struct {
	CA   string `yaml:"ca"`   // PEM roots for etcd's certificate
	Cert string `yaml:"cert"` // client certificate, for etcd's client auth
	Key  string `yaml:"key"`
}

// LogConfig sets up the zap logger.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | console
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
	Log       LogConfig
}

// Defaults, as documented in the README's configuration reference.
const (
	DefaultDomain         = "neo4j.io"
	DefaultRoutesFile     = "routes.yaml"
	DefaultDialTimeout    = 5 * time.Second
	DefaultHandshake      = 10 * time.Second
	DefaultDrain          = 30 * time.Second
	DefaultMaxConnections = 100000
	DefaultAdminAddress   = "127.0.0.1:9090"
	DefaultDNSTTL         = 60
	DefaultACMEStorage    = "certmagic" // beside ingress.yaml
	DefaultEtcdPrefix     = "/ingress/routes/"
	DefaultTicketRotation = 12 * time.Hour
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

	// Names.
	cfg.Namespace.Domain = strings.ToLower(strings.TrimSuffix(raw.Domain, "."))
	if raw.Domain == "" {
		cfg.Namespace.Domain = DefaultDomain
	}
	if !isDomain(cfg.Namespace.Domain) {
		v.Addf(v.at("domain"), "domain %q is not a DNS name", raw.Domain)
	}
	if len(raw.Orchestras) == 0 {
		v.Addf(v.at("orchestras"), "orchestras: at least one orchestra must be served, e.g. [\"0000\"]")
	}
	for i, o := range raw.Orchestras {
		o = strings.ToLower(o)
		node := yamlutil.Item(v.at("orchestras"), i)
		if !routing.ValidLabel("production-orch-" + o) {
			v.Addf(node, "orchestra %q cannot form a name production-orch-<orch>.%s", o, cfg.Namespace.Domain)
		}
		if slices.Contains(cfg.Namespace.Orchestras, o) {
			v.Addf(node, "orchestra %q is listed twice", o)
		}
		cfg.Namespace.Orchestras = append(cfg.Namespace.Orchestras, o)
	}

	// Listeners.
	cfg.Ingress.Listeners = raw.Listeners
	if len(cfg.Ingress.Listeners) == 0 {
		cfg.Ingress.Listeners = ingress.DefaultListeners()
	}
	addrs := map[string]int{}
	for i, l := range raw.Listeners {
		node := yamlutil.Item(v.at("listeners"), i)
		if absent(yamlutil.Value(node, "alpn")) {
			// No alpn key: the service's default list, as if the listener
			// were one of the defaults. alpn: [] offers none.
			for _, d := range ingress.DefaultListeners() {
				if d.Service == l.Service {
					l.ALPN = d.ALPN
					cfg.Ingress.Listeners[i].ALPN = d.ALPN
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

	// PROXY protocol (inbound).
	pp := raw.ProxyProtocol
	if pp.Mode == "" {
		pp.Mode = "off"
	}
	switch pp.Mode {
	case "off":
	case "optional", "required":
		if len(pp.TrustedCIDRs) == 0 {
			v.Addf(v.at("proxy_protocol"), "proxy_protocol.mode %s needs trusted_cidrs: the load balancers' addresses, the only sources whose headers are believed", pp.Mode)
		}
	default:
		v.Addf(v.at("proxy_protocol", "mode"), "proxy_protocol.mode %q must be off, optional or required", pp.Mode)
	}
	for i, c := range pp.TrustedCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			v.Addf(yamlutil.Item(v.at("proxy_protocol", "trusted_cidrs"), i), "bad CIDR %q in trusted_cidrs (want e.g. 10.0.0.0/8)", c)
		}
	}
	cfg.Ingress.ProxyProtocol = pp

	// TLS.
	cfg.TLS = raw.TLS
	if acme := &cfg.TLS.ACME; acme.Enabled() {
		if u, err := url.Parse(acme.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
			v.Addf(v.at("tls", "acme", "directory"), "tls.acme.directory %q must be an https:// URL", acme.Directory)
		}
		if raw.DNS.Address == "" && !v.dnsOnly {
			v.Addf(v.at("tls", "acme"), "tls.acme needs dns.address: the DNS-01 challenges are served by the DNS stub, which must be the zones' authority for the ACME server")
		}
		if acme.Storage == "" {
			acme.Storage = DefaultACMEStorage
		}
		if strings.HasPrefix(acme.Storage, tlsconfig.EtcdPrefix) {
			if raw.Routes.Etcd == nil {
				v.Addf(v.at("tls", "acme", "storage"), "tls.acme.storage %q needs routes.etcd: the etcd cluster it names", acme.Storage)
			}
		} else {
			acme.Storage = v.path(acme.Storage)
		}
		acme.CARoot = v.path(acme.CARoot)
	} else if acme.Email != "" || acme.CARoot != "" {
		v.Addf(v.at("tls", "acme"), "tls.acme has settings but no directory; set directory or remove the section")
	}
	st := &cfg.TLS.SessionTickets
	v.duration(&st.Rotate, DefaultTicketRotation, false, "tls", "session_tickets", "rotate")
	if st.Shared() {
		if raw.Routes.Etcd == nil {
			v.Addf(v.at("tls", "session_tickets", "keys_file"), "tls.session_tickets.keys_file %q needs routes.etcd: the etcd cluster it names", st.KeysFile)
		}
	} else {
		st.KeysFile = v.path(st.KeysFile)
	}
	if _, err := tlsconfig.KeyExchangeGroups(cfg.TLS.KeyExchange); err != nil {
		node := v.at("tls", "key_exchange")
		for i, name := range cfg.TLS.KeyExchange {
			if _, bad := tlsconfig.KeyExchangeGroup(name); bad != nil || slices.Index(cfg.TLS.KeyExchange, name) < i {
				node = yamlutil.Item(node, i) // point at the entry at fault
				break
			}
		}
		v.Addf(node, "tls.key_exchange: %v", err)
	}
	if cfg.TLS.KeyExchange != nil && len(cfg.TLS.KeyExchange) == 0 {
		v.Addf(v.at("tls", "key_exchange"), "tls.key_exchange is empty; leave it out for the default (%s)", strings.Join(tlsconfig.KeyExchangeNames(), ", "))
	}
	if len(cfg.TLS.Certificates) == 0 && !cfg.TLS.ACME.Enabled() && !v.dnsOnly {
		v.Addf(v.at("tls"), "tls.certificates: at least one certificate (cert and key PEM files) is needed, or tls.acme")
	}
	for i := range cfg.TLS.Certificates {
		c := &cfg.TLS.Certificates[i]
		node := yamlutil.Item(v.at("tls", "certificates"), i)
		if c.Cert == "" || c.Key == "" {
			v.Addf(node, "certificate needs both cert and key")
		}
		c.Cert, c.Key = v.path(c.Cert), v.path(c.Key)
	}

	// Routes.
	cfg.Routes = raw.Routes
	if e := cfg.Routes.Etcd; e != nil {
		if cfg.Routes.File != "" {
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
			e.Prefix = DefaultEtcdPrefix
		}
		if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") {
			v.Addf(v.at("routes", "etcd", "prefix"), "routes.etcd.prefix %q must start and end with /", e.Prefix)
		}
		v.duration(&e.DialTimeout, DefaultDialTimeout, false, "routes", "etcd", "dial_timeout")
		if (e.TLS.Cert == "") != (e.TLS.Key == "") {
			v.Addf(v.at("routes", "etcd", "tls"), "routes.etcd.tls needs both cert and key, or neither")
		}
		e.TLS.CA, e.TLS.Cert, e.TLS.Key = v.path(e.TLS.CA), v.path(e.TLS.Cert), v.path(e.TLS.Key)
	} else {
		if cfg.Routes.File == "" {
			cfg.Routes.File = DefaultRoutesFile
		}
		cfg.Routes.File = v.path(cfg.Routes.File)
	}

	// Backend leg.
	b := raw.Backend
	v.duration(&b.DialTimeout, DefaultDialTimeout, false, "backend", "dial_timeout")
	if b.TLS.CA != "" {
		b.TLS.CA = v.path(b.TLS.CA)
		if !b.TLS.Enabled {
			v.Addf(v.at("backend", "tls", "ca"), "backend.tls.ca is set but backend.tls.enabled is false")
		}
	}
	cfg.Ingress.Backend = b

	// Timeouts and limits.
	t := raw.Timeouts
	v.duration(&t.Handshake, DefaultHandshake, false, "timeouts", "handshake")
	v.duration(&t.Idle, 0, true, "timeouts", "idle")
	v.duration(&t.Drain, DefaultDrain, true, "timeouts", "drain")
	cfg.Ingress.Timeouts = t
	cfg.Ingress.Limits = raw.Limits
	switch {
	case absent(yamlutil.Value(v.at("limits"), "max_connections")):
		cfg.Ingress.Limits.MaxConnections = DefaultMaxConnections
	case raw.Limits.MaxConnections < 1:
		v.Addf(v.at("limits", "max_connections"), "limits.max_connections must be at least 1")
	}

	// Refusals.
	switch cfg.Ingress.Refusals = raw.Refusals; raw.Refusals {
	case "":
		cfg.Ingress.Refusals = ingress.RefusalsExplain
	case ingress.RefusalsExplain, ingress.RefusalsAlert:
	default:
		v.Addf(v.at("refusals"), "refusals %q must be explain or alert", raw.Refusals)
	}

	// Admin.
	cfg.Admin = raw.Admin
	if cfg.Admin.Address == "" {
		cfg.Admin.Address = DefaultAdminAddress
	}
	if err := checkListenAddr(cfg.Admin.Address); err != nil {
		v.Addf(v.at("admin", "address"), "admin address %q: %v", cfg.Admin.Address, err)
	}

	// DNS.
	cfg.DNS = raw.DNS
	if absent(yamlutil.Value(v.at("dns"), "ttl")) {
		cfg.DNS.TTL = DefaultDNSTTL
	}
	if cfg.DNS.Address != "" {
		if err := checkListenAddr(cfg.DNS.Address); err != nil {
			v.Addf(v.at("dns", "address"), "dns address %q: %v", cfg.DNS.Address, err)
		}
		if len(cfg.DNS.AnswerIPv4)+len(cfg.DNS.AnswerIPv6) == 0 {
			v.Addf(v.at("dns"), "dns: answer_ipv4 or answer_ipv6 must name the private endpoint's address")
		}
	}
	for i, ip := range cfg.DNS.AnswerIPv4 {
		if a, err := netip.ParseAddr(ip); err != nil || !a.Is4() {
			v.Addf(yamlutil.Item(v.at("dns", "answer_ipv4"), i), "answer_ipv4 %q is not an IPv4 address", ip)
		}
	}
	for i, ip := range cfg.DNS.AnswerIPv6 {
		if a, err := netip.ParseAddr(ip); err != nil || !a.Is6() || a.Is4In6() {
			v.Addf(yamlutil.Item(v.at("dns", "answer_ipv6"), i), "answer_ipv6 %q is not an IPv6 address", ip)
		}
	}
	for i, f := range cfg.DNS.Forward {
		if _, err := netip.ParseAddrPort(f); err != nil {
			v.Addf(yamlutil.Item(v.at("dns", "forward"), i), "forward %q must be ip:port, e.g. 10.0.0.2:53", f)
		}
	}

	// Logs.
	cfg.Log = raw.Log
	if cfg.Log.Level == "" {
		cfg.Log.Level = "info"
	}
	if cfg.Log.Format == "" {
		cfg.Log.Format = "json"
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, cfg.Log.Level) {
		v.Addf(v.at("log", "level"), "log.level %q must be debug, info, warn or error", cfg.Log.Level)
	}
	if !slices.Contains([]string{"json", "console"}, cfg.Log.Format) {
		v.Addf(v.at("log", "format"), "log.format %q must be json or console", cfg.Log.Format)
	}
	return cfg
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
