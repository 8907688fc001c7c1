package fleet

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// CertStorage is a certmagic.Storage on etcd, so that the replicas of a
// fleet share their certificates, keys and ACME accounts, and certmagic's
// locks keep them from ordering the same certificate at once. Each value
// is stored behind an 8-byte modification time (Unix nanoseconds).
type CertStorage struct {
	Client *clientv3.Client
	Prefix string // e.g. /ingress/certmagic/rsa2048/

	mu      sync.Mutex
	session *concurrency.Session // holds the locks; they go with it if the process dies
	locks   map[string]*concurrency.Mutex
}

var _ certmagic.Storage = (*CertStorage)(nil)

// lockTTL is how long a dead process's locks outlive it.
const lockTTL = 60

func (s *CertStorage) key(k string) string { return s.Prefix + strings.TrimPrefix(k, "/") }

// Store implements certmagic.Storage.
func (s *CertStorage) Store(ctx context.Context, key string, value []byte) error {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), uint64(time.Now().UnixNano()))
	if _, err := s.Client.Put(ctx, s.key(key), string(append(v, value...))); err != nil {
		return fmt.Errorf("storing %s in etcd: %w", key, err)
	}
	return nil
}

func (s *CertStorage) get(ctx context.Context, key string) (value []byte, modified time.Time, err error) {
	resp, err := s.Client.Get(ctx, s.key(key))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("loading %s from etcd: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, time.Time{}, fs.ErrNotExist
	}
	v := resp.Kvs[0].Value
	if len(v) < 8 {
		return nil, time.Time{}, fmt.Errorf("loading %s from etcd: value too short", key)
	}
	return v[8:], time.Unix(0, int64(binary.BigEndian.Uint64(v))), nil
}

// Load implements certmagic.Storage.
func (s *CertStorage) Load(ctx context.Context, key string) ([]byte, error) {
	v, _, err := s.get(ctx, key)
	return v, err
}

// Delete implements certmagic.Storage: the key, or everything under it.
func (s *CertStorage) Delete(ctx context.Context, key string) error {
	if _, err := s.Client.Delete(ctx, s.key(key)); err != nil {
		return fmt.Errorf("deleting %s in etcd: %w", key, err)
	}
	if _, err := s.Client.Delete(ctx, s.key(key)+"/", clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("deleting %s/ in etcd: %w", key, err)
	}
	return nil
}

// Exists implements certmagic.Storage.
func (s *CertStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List implements certmagic.Storage.
func (s *CertStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	base := s.key(dir)
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	resp, err := s.Client.Get(ctx, base, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("listing %s in etcd: %w", dir, err)
	}
	seen := map[string]bool{}
	var out []string
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), base)
		if !recursive {
			rest, _, _ = strings.Cut(rest, "/")
		}
		k := path.Join(dir, rest)
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fs.ErrNotExist
	}
	return out, nil
}

// Stat implements certmagic.Storage.
func (s *CertStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	v, modified, err := s.get(ctx, key)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: modified, Size: int64(len(v)), IsTerminal: true}, nil
	}
	if err != fs.ErrNotExist {
		return certmagic.KeyInfo{}, err
	}
	resp, err := s.Client.Get(ctx, s.key(key)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s in etcd: %w", key, err)
	}
	if resp.Count == 0 {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// Lock implements certmagic.Locker with an etcd mutex held by this
// process's session: it is released if the process dies.
func (s *CertStorage) Lock(ctx context.Context, name string) error {
	s.mu.Lock()
	if s.session == nil {
		sess, err := concurrency.NewSession(s.Client, concurrency.WithTTL(lockTTL))
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("etcd lock session: %w", err)
		}
		s.session, s.locks = sess, map[string]*concurrency.Mutex{}
	}
	m := concurrency.NewMutex(s.session, s.key("locks/"+name))
	s.mu.Unlock()
	if err := m.Lock(ctx); err != nil {
		return fmt.Errorf("locking %s in etcd: %w", name, err)
	}
	s.mu.Lock()
	s.locks[name] = m
	s.mu.Unlock()
	return nil
}

// Unlock implements certmagic.Locker.
func (s *CertStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	m := s.locks[name]
	delete(s.locks, name)
	s.mu.Unlock()
	if m == nil {
		return fmt.Errorf("unlocking %s: not locked", name)
	}
	return m.Unlock(ctx)
}
