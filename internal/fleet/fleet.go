// Package fleet is what a fleet of replicas shares through etcd: the
// routing table (one key per instance, read through routing.KVStore, and
// written by `ingress routes`), the session ticket keys, and certmagic's
// certificate storage. It owns the process's one etcd client, so the etcd
// client (with its gRPC, TLS and logging) stays out of routing and
// tlsconfig, which see only small interfaces.
package fleet

import (
	"context"
	"strings"

	"github.com/caddyserver/certmagic"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/neo4j/private-ingress/routing"
	"github.com/neo4j/private-ingress/tlsconfig"
)

// Fleet is a process's link to the etcd cluster its replicas share.
type Fleet struct {
	Client *clientv3.Client
	cfg    Config
}

// Connect dials the cluster c names (without waiting for it to answer).
func Connect(c *Config, logger *zap.Logger) (*Fleet, error) {
	cli, err := Dial(c, logger)
	if err != nil {
		return nil, err
	}
	return &Fleet{Client: cli, cfg: *c}, nil
}

// Close closes the client.
func (f *Fleet) Close() error { return f.Client.Close() }

// RouteSource follows the instances under the configured prefix.
func (f *Fleet) RouteSource(ns routing.Namespace, holder *routing.Holder, onReload func(*routing.Table, error)) *routing.EtcdSource {
	return &routing.EtcdSource{
		Store: Store{Client: f.Client}, Prefix: f.cfg.Prefix, Namespace: ns, Holder: holder, Timeout: f.cfg.DialTimeout,
		OnApply: func(t *routing.Table, _ int, err error) { onReload(t, err) },
	}
}

// Routes writes and reads the instances under the configured prefix.
func (f *Fleet) Routes() Routes { return Routes{Client: f.Client, Prefix: f.cfg.Prefix} }

// ShareTicketKeys loads the session ticket keys stored at st's etcd key
// into keys (making them if there are none) within the dial timeout, and
// returns what keeps them current: run it until the process stops.
func (f *Fleet) ShareTicketKeys(ctx context.Context, st tlsconfig.SessionTickets, keys *tlsconfig.TicketKeys) (*TicketKeys, error) {
	shared := &TicketKeys{Client: f.Client, Key: strings.TrimPrefix(st.KeysFile, tlsconfig.EtcdPrefix), Rotate: st.Rotate, Keys: keys}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.DialTimeout)
	defer cancel()
	if _, err := shared.Load(ctx); err != nil {
		return nil, err
	}
	return shared, nil
}

// CertStorage returns certmagic's storage for tls.acme.storage when it
// names etcd ("etcd:/prefix"): one prefix per key type, since certmagic's
// paths do not name it. It returns nil for file storage, and on a nil
// Fleet (no etcd configured).
func (f *Fleet) CertStorage(storage string) func(keyType string) certmagic.Storage {
	prefix, ok := strings.CutPrefix(storage, tlsconfig.EtcdPrefix)
	if !ok || f == nil {
		return nil
	}
	return func(keyType string) certmagic.Storage {
		return &CertStorage{Client: f.Client, Prefix: strings.TrimSuffix(prefix, "/") + "/" + keyType + "/"}
	}
}
