package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

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
		if slices.Contains(keys[:i], keys[i]) {
			return nil, fmt.Errorf("put: instance %s in orch %s is given twice", e.DBID, e.Orch)
		}
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

// Command carries out `ingress routes VERB ARGS...` and prints what it
// did: put FILE... (every file validated as a routes.yaml entry before
// anything is written, then all in one transaction), delete DBID [ORCH]
// (the first served orch by default), list.
func (r Routes) Command(ctx context.Context, ns routing.Namespace, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: ingress routes put FILE... | delete DBID [ORCH] | list")
	}
	switch verb, rest := args[0], args[1:]; verb {
	case "put":
		if len(rest) == 0 {
			return errors.New("ingress routes put: name one or more instance files (YAML or JSON, one routes.yaml entry each)")
		}
		entries, err := routing.ReadEntries(rest, ns)
		if err != nil {
			return err
		}
		keys, err := r.Put(ctx, entries)
		for _, key := range keys {
			fmt.Fprintf(stdout, "put %s\n", key)
		}
		return err
	case "delete":
		if len(rest) < 1 || len(rest) > 2 {
			return errors.New("usage: ingress routes delete DBID [ORCH]")
		}
		orch := ns.Orchestras[0]
		if len(rest) == 2 {
			orch = rest[1]
		}
		key, err := r.Delete(ctx, strings.ToLower(orch), strings.ToLower(rest[0]))
		if err == nil {
			fmt.Fprintf(stdout, "deleted %s\n", key)
		}
		return err
	case "list":
		kvs, err := r.List(ctx)
		for _, kv := range kvs {
			fmt.Fprintf(stdout, "%s\t%s\n", kv.Key, kv.Value)
		}
		return err
	}
	return fmt.Errorf("ingress routes: unknown verb %q (put, delete, list)", args[0])
}
