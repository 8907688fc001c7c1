package etcdkv

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/neo4j/private-ingress/routing"
)

// maxTxnOps is etcd's default --max-txn-ops: the most keys one transaction
// may write.
const maxTxnOps = 128

// Routes writes and reads the instances under a prefix: what `ingress
// routes put|delete|list` does, each instance under its own key.
type Routes struct {
	Client *clientv3.Client
	Prefix string
}

// Put writes every entry in one transaction: all of them or, on error,
// none. It returns the keys written.
func (r Routes) Put(ctx context.Context, entries []routing.Entry) ([]string, error) {
	if len(entries) > maxTxnOps {
		return nil, fmt.Errorf("put: %d instances, at most %d at once (etcd's --max-txn-ops)", len(entries), maxTxnOps)
	}
	keys := make([]string, len(entries))
	ops := make([]clientv3.Op, len(entries))
	for i, e := range entries {
		keys[i] = routing.Key(r.Prefix, e.Orch, e.DBID)
		ops[i] = clientv3.OpPut(keys[i], string(e.JSON()))
	}
	if _, err := r.Client.Txn(ctx).Then(ops...).Commit(); err != nil {
		return nil, fmt.Errorf("put %d instances under %s: %w", len(entries), r.Prefix, err)
	}
	return keys, nil
}

// Delete removes the instance dbid of orch and returns its key; an
// instance that is not there is an error.
func (r Routes) Delete(ctx context.Context, orch, dbid string) (string, error) {
	key := routing.Key(r.Prefix, orch, dbid)
	resp, err := r.Client.Delete(ctx, key)
	if err != nil {
		return key, fmt.Errorf("delete %s: %w", key, err)
	}
	if resp.Deleted == 0 {
		return key, fmt.Errorf("delete %s: no such instance", key)
	}
	return key, nil
}

// List returns every key under the prefix with its value.
func (r Routes) List(ctx context.Context) ([]routing.KV, error) {
	kvs, _, err := Store{Client: r.Client}.Load(ctx, r.Prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", r.Prefix, err)
	}
	return kvs, nil
}
