package tlsconfig

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/neo4j/private-ingress/internal/fswatch"
)

// SessionTickets is the tls.session_tickets section: how the keys that
// encrypt TLS session tickets (resumption without a full handshake) are
// made.
type SessionTickets struct {
	// Rotate makes a new key this often; the two before it still decrypt,
	// so a ticket resumes for up to three periods. Ignored with KeysFile.
	Rotate time.Duration `yaml:"rotate"`
	// KeysFile holds shared keys, so that a session resumes on any replica
	// of a fleet: one key per line as 64 hex digits, the first encrypts,
	// all decrypt. It is re-read when it changes; rotating is then the job
	// of whoever writes it.
	KeysFile string `yaml:"keys_file"`
}

// keysKept is how many keys decrypt: the current one and two before it.
const keysKept = 3

// KeysKept is how many keys decrypt: the current one and two before it.
const KeysKept = keysKept

// EtcdPrefix marks a keys_file that is an etcd key: the fleet's keys live
// there (cmd/ingress runs them through internal/fleet).
const EtcdPrefix = "etcd:"

// Shared reports whether the keys live in etcd rather than a file.
func (c SessionTickets) Shared() bool { return strings.HasPrefix(c.KeysFile, EtcdPrefix) }

// TicketKeys sets the session ticket keys of every registered server
// config, and rotates them. It is safe for concurrent use.
type TicketKeys struct {
	cfg SessionTickets

	mu      sync.Mutex
	keys    [][32]byte
	configs []*tls.Config
}

// NewTicketKeys makes the first keys: random ones, or those of the keys
// file, whose errors name the file and line.
func NewTicketKeys(cfg SessionTickets) (*TicketKeys, error) {
	t := &TicketKeys{cfg: cfg}
	if cfg.KeysFile != "" && !cfg.Shared() {
		keys, err := readTicketKeys(cfg.KeysFile)
		if err != nil {
			return nil, err
		}
		t.keys = keys
		return t, nil
	}
	var k [32]byte
	rand.Read(k[:])
	t.keys = [][32]byte{k}
	return t, nil
}

// Register gives c the current keys and every later rotation. c is the
// config given to tls.Server: crypto/tls uses its keys when the config
// that GetConfigForClient returns has none of its own.
func (t *TicketKeys) Register(c *tls.Config) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.SetSessionTicketKeys(t.keys)
	t.configs = append(t.configs, c)
}

// Set replaces the keys: the first encrypts, all decrypt. For keys kept
// elsewhere (etcd); Run does it for files and rotation.
func (t *TicketKeys) Set(keys [][32]byte) { t.set(keys) }

func (t *TicketKeys) set(keys [][32]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.keys = keys
	for _, c := range t.configs {
		c.SetSessionTicketKeys(keys) // safe during handshakes
	}
}

// Rotate puts a new random key first and keeps the previous ones to
// decrypt, up to keysKept in all.
func (t *TicketKeys) Rotate() {
	var k [32]byte
	rand.Read(k[:])
	t.mu.Lock()
	keys := append([][32]byte{k}, t.keys...)
	t.mu.Unlock()
	t.set(keys[:min(len(keys), keysKept)])
}

// Run rotates the keys every Rotate, or re-reads the keys file when it
// changes, until ctx is done. onReload hears each file reload's outcome;
// a bad file keeps the keys in use.
func (t *TicketKeys) Run(ctx context.Context, onReload func(error)) error {
	if t.cfg.Shared() {
		<-ctx.Done() // etcd's watcher sets them
		return nil
	}
	if t.cfg.KeysFile == "" {
		tick := time.NewTicker(t.cfg.Rotate)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				t.Rotate()
			}
		}
	}
	return fswatch.Dirs(ctx, []string{filepath.Dir(t.cfg.KeysFile)}, 250*time.Millisecond, func() {
		keys, err := readTicketKeys(t.cfg.KeysFile)
		if err == nil {
			t.set(keys)
		}
		if onReload != nil {
			onReload(err)
		}
	}, onReload)
}

// readTicketKeys parses a keys file: one key per line as 64 hex digits;
// blank lines and lines starting with # are skipped.
func readTicketKeys(path string) ([][32]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("session ticket keys: %w", err)
	}
	return ParseTicketKeys(path, data)
}

// ParseTicketKeys reads keys in the keys file's format from data; name
// says where they came from in errors.
func ParseTicketKeys(path string, data []byte) ([][32]byte, error) {
	var keys [][32]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var k [32]byte
		if len(text) != 2*len(k) {
			return nil, fmt.Errorf("%s:%d: a session ticket key is 64 hex digits (32 bytes), not %d characters", path, line, len(text))
		}
		if _, err := hex.Decode(k[:], []byte(text)); err != nil {
			return nil, fmt.Errorf("%s:%d: session ticket key: %v", path, line, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no session ticket key", path)
	}
	return keys, nil
}
