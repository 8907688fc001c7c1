package ingress

import (
	"fmt"
	"slices"
	"time"

	"github.com/neo4j/private-ingress/routing"
)

// Defaults of the settings this package owns. internal/config applies them
// to keys ingress.yaml leaves out; New applies them to zero values, so a
// Config built in code needs only what it changes.
const (
	DefaultDialTimeout      = 5 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDrainTimeout     = 30 * time.Second
	DefaultParkAfter        = 2 * time.Second
	DefaultMaxConnections   = 100000
	DefaultAdminAddress     = "127.0.0.1:9090"
	DefaultBackendCooldown  = 10 * time.Second
	DefaultRefusals         = RefusalsExplain
)

// ListenerConfig is one TLS listener: the service it serves, its address and
// the ALPN protocols it answers. The ingress passes bytes through, so list
// h2 only if the backends speak cleartext HTTP/2 (or the backend leg is TLS
// with the same protocol).
type ListenerConfig struct {
	Service string   `yaml:"service"`
	Address string   `yaml:"address"`
	ALPN    []string `yaml:"alpn"`
}

// DefaultListeners are the listeners used when the config names none.
func DefaultListeners() []ListenerConfig {
	return []ListenerConfig{
		{Service: "https", Address: ":443", ALPN: []string{"h2", "http/1.1"}},
		{Service: "bolt", Address: ":7687"},
		{Service: "http", Address: ":7474", ALPN: []string{"h2", "http/1.1"}},
		{Service: "arrow", Address: ":8491", ALPN: []string{"h2"}},
	}
}

// ProxyProtocolConfig is the inbound PROXY protocol section.
type ProxyProtocolConfig struct {
	Mode         string   `yaml:"mode"` // off | optional | required
	TrustedCIDRs []string `yaml:"trusted_cidrs"`
}

// ProxyMode is the inbound PROXY protocol mode.
type ProxyMode uint8

// The inbound PROXY protocol modes.
const (
	ProxyOff      ProxyMode = iota
	ProxyOptional           // a header is used if the source is trusted, refused otherwise
	ProxyRequired           // every connection must come from a trusted source with a header
)

// ParseProxyMode reads proxy_protocol.mode; empty is off.
func ParseProxyMode(s string) (ProxyMode, error) {
	switch s {
	case "", "off":
		return ProxyOff, nil
	case "optional":
		return ProxyOptional, nil
	case "required":
		return ProxyRequired, nil
	}
	return ProxyOff, fmt.Errorf("proxy_protocol.mode %q must be off, optional or required", s)
}

// ParseRefusals reads refusals: whether refused connections are explained
// in their own protocol (explain, the default when empty) or get an alert.
func ParseRefusals(s string) (explain bool, err error) {
	switch s {
	case "", RefusalsExplain:
		return true, nil
	case RefusalsAlert:
		return false, nil
	}
	return false, fmt.Errorf("refusals %q must be explain or alert", s)
}

// BackendConfig says how backends are dialled.
type BackendConfig struct {
	DialTimeout   time.Duration    `yaml:"dial_timeout"`
	ProxyProtocol bool             `yaml:"proxy_protocol"`
	TLS           BackendTLSConfig `yaml:"tls"`
}

// BackendTLSConfig turns on TLS towards the backends.
type BackendTLSConfig struct {
	Enabled    bool   `yaml:"enabled"`
	CA         string `yaml:"ca"`          // PEM roots; empty means the system roots
	ServerName string `yaml:"server_name"` // empty means the backend's host
	// ClientCert and ClientKey are the certificate the ingress presents to
	// backends that ask for one (mTLS); both or neither.
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
}

// Timeouts bound the phases of a connection.
type Timeouts struct {
	Handshake time.Duration `yaml:"handshake"` // PROXY header and TLS handshake together
	Idle      time.Duration `yaml:"idle"`      // no byte either way for this long closes; 0 = never
	// Park is how long one direction of a connection may be quiet before
	// its goroutine ends and the socket waits on the parker (epoll): an
	// idle connection then holds no goroutine stack. 0 = never.
	Park  time.Duration `yaml:"park"`
	Drain time.Duration `yaml:"drain"` // how long SIGTERM waits for open connections
	// ShutdownDelay is how long, after SIGTERM, /readyz says 503 while the
	// listeners still accept: a load balancer keeps sending new connections
	// until its health checks see the 503 and it deregisters the target.
	ShutdownDelay time.Duration `yaml:"shutdown_delay"`
}

// Limits bound what the ingress holds.
type Limits struct {
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerSource caps the open connections of one client
	// address (the trusted PROXY header's source, else the TCP peer),
	// those in their handshake included; 0 is no cap.
	MaxConnectionsPerSource int `yaml:"max_connections_per_source"`
	// MaxConnectionsPerEndpoint caps the open connections through one
	// private endpoint; 0 is no cap. Connections without one are not counted.
	MaxConnectionsPerEndpoint int `yaml:"max_connections_per_endpoint"`
	// MaxExplainedPerSecond is the rate, per listener, of refusals answered
	// in the client's protocol (a burst of as many); beyond it they get the
	// alert. 0 means DefaultMaxExplainedPerSecond, ExplainNever (or any
	// negative value) explains none: internal/config turns a 0 written in
	// ingress.yaml into ExplainNever.
	MaxExplainedPerSecond int `yaml:"max_explained_per_second"`
}

// AdminConfig is the admin HTTP server (/metrics, /healthz, /readyz).
type AdminConfig struct {
	Address string `yaml:"address"`
	// Pprof serves Go's profiler under /debug/pprof/: off by default, since
	// it shows goroutine dumps with source paths and heap contents.
	Pprof bool `yaml:"pprof"`
}

// Config is everything the Server needs from ingress.yaml.
type Config struct {
	Listeners     []ListenerConfig
	ProxyProtocol ProxyProtocolConfig
	Backend       BackendConfig
	Timeouts      Timeouts
	Limits        Limits
	// Refusals is RefusalsExplain (also when empty) or RefusalsAlert.
	Refusals string
	// BackendCooldown is how long a backend whose dial failed is tried last.
	// Not in ingress.yaml; zero means 10s.
	BackendCooldown time.Duration
	// RevokeAfter is routes.revoke_after: how long after a reload that took
	// an open connection's access away the connection is closed. Zero means
	// DefaultRevokeAfter, negative (RevokeNever) never: internal/config
	// turns a 0s written in ingress.yaml into RevokeAtOnce.
	RevokeAfter time.Duration
}

// listenerService resolves a listener's service name; internal/config has
// already validated it.
func listenerService(l ListenerConfig) routing.Service {
	s, _ := routing.ParseService(l.Service)
	return s
}

// Equal reports whether two configs are the same, which a reload uses to
// tell which settings changed.
func (c Config) Equal(o Config) bool {
	return slices.EqualFunc(c.Listeners, o.Listeners, ListenerConfig.Equal) &&
		c.ProxyProtocol.Mode == o.ProxyProtocol.Mode &&
		slices.Equal(c.ProxyProtocol.TrustedCIDRs, o.ProxyProtocol.TrustedCIDRs) &&
		c.Backend == o.Backend && c.Timeouts == o.Timeouts && c.Limits == o.Limits &&
		c.Refusals == o.Refusals && c.BackendCooldown == o.BackendCooldown &&
		c.RevokeAfter == o.RevokeAfter
}

// Equal reports whether two listeners are the same.
func (l ListenerConfig) Equal(o ListenerConfig) bool {
	return l.Service == o.Service && l.Address == o.Address && slices.Equal(l.ALPN, o.ALPN)
}
