package fleet

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/neo4j/private-ingress/routing"
)

// Store is routing.KVStore over an etcd client.
type Store struct{ Client *clientv3.Client }

var _ routing.KVStore = Store{}

// Load implements routing.KVStore.
func (s Store) Load(ctx context.Context, prefix string) ([]routing.KV, int64, error) {
	resp, err := s.Client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	kvs := make([]routing.KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		kvs[i] = routing.KV{Key: string(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision}
	}
	return kvs, resp.Header.Revision, nil
}

// Watch implements routing.KVStore. It requires a leader, so that a
// partitioned member ends the watch rather than going quiet.
func (s Store) Watch(ctx context.Context, prefix string, from int64) <-chan routing.KVBatch {
	out := make(chan routing.KVBatch)
	go func() {
		defer close(out)
		for resp := range s.Client.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(from)) {
			b := routing.KVBatch{Revision: resp.Header.Revision, Err: resp.Err()}
			b.Compacted = resp.CompactRevision != 0 || errors.Is(b.Err, rpctypes.ErrCompacted)
			for _, ev := range resp.Events {
				b.Changes = append(b.Changes, routing.KV{
					Key: string(ev.Kv.Key), Value: ev.Kv.Value, ModRevision: ev.Kv.ModRevision,
					Deleted: ev.Type == mvccpb.DELETE,
				})
			}
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
			if b.Err != nil || b.Compacted {
				return
			}
		}
	}()
	return out
}

// Ping implements routing.KVStore: a count-only read of one key.
func (s Store) Ping(ctx context.Context) error {
	_, err := s.Client.Get(ctx, "health", clientv3.WithCountOnly())
	return err
}
