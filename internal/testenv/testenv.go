// Package testenv holds what every test package needs from its
// environment, written once: finding the external tools a test drives
// (skip on a developer's machine without them, fail in CI, where .ci/run
// installs them), the quick tier's rule (-short runs nothing external),
// waiting for an event instead of sleeping, and building a binary once
// per test package. Tests only.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// CI reports whether the tests run in CI (CI=true, as .ci/run is called),
// where a missing tool is a failure rather than a skip.
func CI() bool { return strings.EqualFold(os.Getenv("CI"), "true") }

// Missing skips t, or fails it in CI: what is not installed, and install
// says how to get it.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	if CI() {
		t.Fatalf("%s is missing; .ci/run installs it (%s)", what, install)
	}
	t.Skipf("%s is missing (%s)", what, install)
}

// External marks a test that drives something outside the test process
// (a command-line client, a real server, root, namespaces): the quick
// tier (go test -short) skips it.
func External(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("drives an external tool or process: not in the quick tier (-short)")
	}
}

// Command finds a command-line tool on the PATH for an external test (see
// External): missing, it skips the test, or fails it in CI.
func Command(t testing.TB, name string) string {
	t.Helper()
	External(t)
	path, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name, "apt-get install the package that ships it")
	}
	return path
}

// CacheDir is the repository's .cache folder, where .ci/run installs the
// tools the module proxy and npm serve (pebble, the JavaScript driver).
func CacheDir() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", ".cache")
}

// WaitTimeout bounds WaitFor. It is a failure bound, not a schedule: a
// busy machine makes events late, never a test wrong.
const WaitTimeout = 30 * time.Second

// WaitFor polls cond until it holds, failing t with what it waited for if
// it does not within WaitTimeout.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !Poll(WaitTimeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", WaitTimeout, what)
	}
}

// Poll polls cond every few milliseconds until it holds (true) or timeout
// passes (false).
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(delay)
	}
	return true
}

// ErrExited says that a server a helper started ended before it served.
var ErrExited = errors.New("exited before serving")

// WaitServing polls serving until it returns nil; until the process whose
// end closes exited has ended (ErrExited: the caller reads its log, for
// an address in use, say); or until WaitTimeout passes (an error with
// serving's last). The helpers that start servers (etcd, Pebble, Knot)
// tell "ready", "gone" and "stuck" apart with it.
func WaitServing(exited <-chan struct{}, serving func() error) error {
	var last error
	ok := Poll(WaitTimeout, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		last = serving()
		return last == nil
	})
	select {
	case <-exited:
		return ErrExited
	default:
	}
	if !ok {
		return fmt.Errorf("no answer within %v: %v", WaitTimeout, last)
	}
	return nil
}

// Binary is a program built at most once for a test package, on the
// first test that asks for it, and removed by TestMain after m.Run.
type Binary struct {
	pkg  string
	args []string
	once sync.Once
	dir  string
	path string
	err  error
}

// NewBinary names the package to build (a path as go build takes it, e.g.
// ".") and extra build arguments; nothing is built until Path is called.
func NewBinary(pkg string, args ...string) *Binary { return &Binary{pkg: pkg, args: args} }

// Path builds the binary the first time it is called and returns its path,
// failing t if it does not build.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	b.once.Do(b.build)
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func (b *Binary) build() {
	if b.dir, b.err = os.MkdirTemp("", "testenv-bin-"); b.err != nil {
		return
	}
	name := filepath.Base(b.pkg)
	if b.pkg == "." {
		wd, _ := os.Getwd()
		name = filepath.Base(wd)
	}
	b.path = filepath.Join(b.dir, name)
	cmd := exec.Command("go", append(append([]string{"build", "-o", b.path}, b.args...), b.pkg)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
	}
}

// Remove deletes the binary, if it was built.
func (b *Binary) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// AddrInUse returns the line of a server's log that says its port was
// taken ("address already in use"), or "": a helper that picked the port
// starts the server again on another one.
func AddrInUse(log string) string {
	for line := range strings.Lines(log) {
		if strings.Contains(line, "address already in use") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
