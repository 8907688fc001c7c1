package sdnotify

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PIDFile is the path of a file naming the serving process, for a
// supervisor that reads one (systemd's PIDFile=, a wrapper script);
// the empty path writes nothing.
type PIDFile string

// Write makes the file name this process. It is atomic (a temporary file
// in the same directory, renamed over the old one): a reader sees the
// previous PID or this one, never an empty or half-written file.
func (f PIDFile) Write() error {
	if f == "" {
		return nil
	}
	path := string(f)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing the PID file: %w", err)
	}
	_, err = fmt.Fprintf(tmp, "%d\n", os.Getpid())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644) // CreateTemp's 0600 would hide it from whoever reads it
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing the PID file: %w", err)
	}
	return nil
}

// Remove deletes the file if it still names this process. After a
// hand-over it names the new process, which wrote it before it told this
// one that it serves: the old process then leaves it alone.
func (f PIDFile) Remove() error {
	if f == "" {
		return nil
	}
	data, err := os.ReadFile(string(f))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing the PID file: %w", err)
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err != nil || pid != os.Getpid() {
		return nil // another process's
	}
	if err := os.Remove(string(f)); err != nil {
		return fmt.Errorf("removing the PID file: %w", err)
	}
	return nil
}
