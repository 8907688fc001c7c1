package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/neo4j/private-ingress/tlsconfig"
)

// TicketKeys keeps a fleet's TLS session ticket keys in one etcd key, in
// the keys file's format (the first encrypts; all decrypt), so that a
// session resumes on any replica. Every replica follows the key; each
// period every replica tries to put a new key first, and a transaction on
// the key's revision lets one of them win.
type TicketKeys struct {
	Client *clientv3.Client
	Key    string
	Rotate time.Duration
	Keys   *tlsconfig.TicketKeys
}

// rotatedMark starts the value: when its first key was made.
const rotatedMark = "# rotated "

func newValue(prev [][32]byte) string {
	var k [32]byte
	rand.Read(k[:])
	keys := append([][32]byte{k}, prev...)
	keys = keys[:min(len(keys), tlsconfig.KeysKept)]
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s\n", rotatedMark, time.Now().UTC().Format(time.RFC3339Nano))
	for _, k := range keys {
		b.WriteString(hex.EncodeToString(k[:]) + "\n")
	}
	return b.String()
}

func rotatedAt(value string) time.Time {
	line, _, _ := strings.Cut(value, "\n")
	t, _ := time.Parse(time.RFC3339Nano, strings.TrimPrefix(line, rotatedMark))
	return t
}

// Load reads the keys (creating the first, if no replica has) and sets them.
func (t *TicketKeys) Load(ctx context.Context) (modRev int64, err error) {
	_, err = t.Client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(t.Key), "=", 0)).Then(clientv3.OpPut(t.Key, newValue(nil))).Commit()
	if err != nil {
		return 0, fmt.Errorf("session ticket keys in etcd %s: %w", t.Key, err)
	}
	resp, err := t.Client.Get(ctx, t.Key)
	if err != nil || len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("session ticket keys in etcd %s: %v", t.Key, err)
	}
	return resp.Kvs[0].ModRevision, t.set(resp.Kvs[0].Value)
}

func (t *TicketKeys) set(value []byte) error {
	keys, err := tlsconfig.ParseTicketKeys("etcd:"+t.Key, value)
	if err != nil {
		return err
	}
	t.Keys.Set(keys)
	return nil
}

// Run follows the key and rotates it until ctx ends; onErr hears problems.
func (t *TicketKeys) Run(ctx context.Context, onErr func(error)) {
	check := time.NewTicker(min(t.Rotate/4, time.Minute))
	defer check.Stop()
	watch := t.Client.Watch(ctx, t.Key)
	for {
		select {
		case <-ctx.Done():
			return
		case resp, ok := <-watch:
			if !ok {
				watch = t.Client.Watch(ctx, t.Key)
				continue
			}
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypePut {
					if err := t.set(ev.Kv.Value); err != nil {
						onErr(err)
					}
				}
			}
		case <-check.C:
			if err := t.rotateIfDue(ctx); err != nil {
				onErr(err)
			}
		}
	}
}

// rotateIfDue puts a new first key once the current one is Rotate old;
// of replicas racing, the transaction lets one win.
func (t *TicketKeys) rotateIfDue(ctx context.Context) error {
	resp, err := t.Client.Get(ctx, t.Key)
	if err != nil || len(resp.Kvs) == 0 {
		return fmt.Errorf("session ticket keys in etcd %s: %v", t.Key, err)
	}
	kv := resp.Kvs[0]
	if time.Since(rotatedAt(string(kv.Value))) < t.Rotate {
		return nil
	}
	prev, err := tlsconfig.ParseTicketKeys("etcd:"+t.Key, kv.Value)
	if err != nil {
		prev = nil // a broken value is replaced
	}
	_, err = t.Client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(t.Key), "=", kv.ModRevision)).
		Then(clientv3.OpPut(t.Key, newValue(prev))).Commit()
	return err
}
