package fleet

import (
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/tlsconfig"
)

// Config is routes.etcd: the etcd cluster a fleet of replicas shares its
// routing table, session ticket keys and certificates through.
type Config struct {
	Endpoints   []string      `yaml:"endpoints"`    // http(s)://host:port
	Prefix      string        `yaml:"prefix"`       // route keys are <prefix><orch>/<dbid>
	DialTimeout time.Duration `yaml:"dial_timeout"` // per connection attempt
	TLS         TLSFiles      `yaml:"tls"`
}

// TLSFiles are the client side of TLS to etcd; empty fields are not used.
type TLSFiles struct {
	CA   string `yaml:"ca"`   // PEM roots for etcd's certificate
	Cert string `yaml:"cert"` // client certificate, for etcd's client auth
	Key  string `yaml:"key"`
}

// DefaultPrefix is where the route keys live when routes.etcd.prefix is
// left out.
const DefaultPrefix = "/ingress/routes/"

// Equal reports whether two configs are the same.
func (c Config) Equal(o Config) bool {
	return slices.Equal(c.Endpoints, o.Endpoints) && c.Prefix == o.Prefix &&
		c.DialTimeout == o.DialTimeout && c.TLS == o.TLS
}

// Dial returns a client for the cluster c names: a process makes one and
// shares it between its routes, ticket keys and certificate storage. It
// does not wait for etcd to answer.
func Dial(c *Config, logger *zap.Logger) (*clientv3.Client, error) {
	cc := clientv3.Config{
		Endpoints: c.Endpoints, DialTimeout: c.DialTimeout,
		Logger: logger.Named("etcd").WithOptions(zap.IncreaseLevel(zap.ErrorLevel)),
	}
	https := slices.ContainsFunc(c.Endpoints, func(e string) bool { return strings.HasPrefix(e, "https:") })
	if c.TLS.CA != "" || c.TLS.Cert != "" || https {
		tc, err := tlsconfig.ClientConfig(tlsconfig.ClientFiles{CA: c.TLS.CA, Cert: c.TLS.Cert, Key: c.TLS.Key})
		if err != nil {
			return nil, fmt.Errorf("routes.etcd.tls: %w", err)
		}
		cc.TLS = tc
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", c.Endpoints, err)
	}
	return cli, nil
}
