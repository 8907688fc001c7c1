package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/neo4j/private-ingress/internal/buildinfo"
	"github.com/neo4j/private-ingress/tlsconfig"
)

var update = flag.Bool("update", false, "rewrite the golden want.txt files under testdata/check")

// runInProcess calls run in-process and returns its exit code and output.
func runInProcess(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestVersion(t *testing.T) {
	want := buildinfo.Read().String() + "\n"
	for _, arg := range []string{"version", "-version", "--version"} {
		t.Run(arg, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, arg)
			if code != 0 || stdout != want || stderr != "" {
				t.Errorf("run(%s) = %d, stdout %q, stderr %q; want 0, %q, nothing", arg, code, stdout, stderr, want)
			}
		})
	}
	// The test binary is built without VCS stamping or the openssl tag.
	if fields := strings.Fields(want); len(fields) != 6 || fields[0] != "ingress" || fields[1] != "dev" ||
		fields[2] != "unknown" || fields[3] != "unknown" || fields[4] != runtime.Version() || fields[5] != "pure-go" {
		t.Errorf("version line %q, want: ingress dev unknown unknown %s pure-go", want, runtime.Version())
	}
}

// usageText is what `ingress help` prints: the command list.
func usageText(t *testing.T) string {
	t.Helper()
	code, stdout, _ := runInProcess(t, "help")
	if code != 0 {
		t.Fatalf("ingress help: exit %d", code)
	}
	return stdout
}

func TestUsage(t *testing.T) {
	usage := usageText(t)
	t.Run("no command", func(t *testing.T) {
		code, stdout, stderr := runInProcess(t)
		if code != 2 || stdout != "" || stderr != usage {
			t.Errorf("run() = %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, stdout, stderr)
		}
	})
	t.Run("unknown command", func(t *testing.T) {
		code, stdout, stderr := runInProcess(t, "frobnicate", "-config", "x.yaml")
		want := "ingress: unknown command \"frobnicate\"\n" + usage
		if code != 2 || stdout != "" || stderr != want {
			t.Errorf("run(frobnicate) = %d, stdout %q, stderr:\n%s\nwant 2 and:\n%s", code, stdout, stderr, want)
		}
	})
	for _, arg := range []string{"help", "-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, arg)
			if code != 0 || stdout != usage || stderr != "" {
				t.Errorf("run(%s) = %d, stdout %q, stderr %q; want 0 and the usage on stdout", arg, code, stdout, stderr)
			}
		})
	}
	for _, want := range []string{
		"ingress serve [-config ingress.yaml] [-pidfile FILE]", "ingress dns [-config ingress.yaml] [-pidfile FILE]",
		"ingress check [-config ingress.yaml]", "ingress demo [-dir demo] [-real-ports]",
		"ingress routes put [-config ingress.yaml] FILE...", "ingress routes delete [-config ingress.yaml] DBID [ORCH]",
		"ingress routes list [-config ingress.yaml]", "ingress version",
	} {
		if !strings.Contains(usage, "\n  "+want+"\n") {
			t.Errorf("usage does not list %q:\n%s", want, usage)
		}
	}
}

// TestCommandFlags: each command takes its own flags only, `-h` prints
// its usage on stdout and exits 0, a flag it does not take exits 2, and
// asking routes for help reads no config (the test runs in an empty
// directory: there is no ingress.yaml to read).
func TestCommandFlags(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, c := range []struct {
		name         string
		args         []string
		code         int
		stdout       []string // substrings of stdout ("" for: stdout empty)
		stderrPrefix string
		notIn        []string // not in stdout
	}{
		{"serve -h", []string{"serve", "-h"}, 0, []string{"usage: ingress serve [-config ingress.yaml] [-pidfile FILE]\n", "  -config string", "  -pidfile FILE"}, "", []string{"-dir", "-real-ports"}},
		{"serve --help", []string{"serve", "--help"}, 0, []string{"-config", "-pidfile"}, "", []string{"-dir"}},
		{"dns -h", []string{"dns", "-h"}, 0, []string{"usage: ingress dns ", "-config", "-pidfile"}, "", []string{"-dir", "-real-ports"}},
		{"check -h", []string{"check", "-h"}, 0, []string{"usage: ingress check [-config ingress.yaml]\n", "-config"}, "", []string{"-pidfile", "-dir"}},
		{"demo -h", []string{"demo", "-h"}, 0, []string{"usage: ingress demo [-dir demo] [-real-ports]\n", "-dir", "-real-ports"}, "", []string{"-config", "-pidfile"}},
		{"version -h", []string{"version", "-h"}, 0, []string{"usage: ingress version\n"}, "", []string{"flags:"}},
		{"routes -h", []string{"routes", "-h"}, 0, []string{"ingress routes put [-config ingress.yaml] FILE...", "ingress routes delete", "ingress routes list", "usage: ingress routes <command>"}, "", []string{"ingress serve", "ingress demo"}},
		{"routes put -h", []string{"routes", "put", "-config", "missing.yaml", "-h"}, 0, []string{"usage: ingress routes put [-config ingress.yaml] FILE...\n", "-config"}, "", []string{"-pidfile"}},
		{"serve -dir", []string{"serve", "-dir", "x"}, 2, []string{""}, "flag provided but not defined: -dir\nusage: ingress serve ", nil},
		{"demo -config", []string{"demo", "-config", "x.yaml"}, 2, []string{""}, "flag provided but not defined: -config\n", nil},
		{"serve -pidfile without a value", []string{"serve", "-pidfile"}, 2, []string{""}, "flag needs an argument: -pidfile\n", nil},
		{"version extra", []string{"version", "x"}, 2, []string{""}, "ingress version: unexpected arguments [\"x\"]\n", nil},
		{"routes without a command", []string{"routes"}, 2, []string{""}, "ingress routes: which one?\n", nil},
		{"routes frobnicate", []string{"routes", "frobnicate"}, 2, []string{""}, "ingress: unknown command \"routes frobnicate\"\n", nil},
		{"serve without a config", []string{"serve"}, 1, []string{""}, "ingress: reading config: open ingress.yaml: no such file or directory\n", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, c.args...)
			if code != c.code || !strings.HasPrefix(stderr, c.stderrPrefix) || (c.stderrPrefix == "" && stderr != "") {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, c.code, c.stderrPrefix)
			}
			for _, want := range c.stdout {
				if want == "" && stdout != "" || !strings.Contains(stdout, want) {
					t.Errorf("stdout %q, want %q in it", stdout, want)
				}
			}
			for _, not := range c.notIn {
				if strings.Contains(stdout, not) {
					t.Errorf("stdout lists %q:\n%s", not, stdout)
				}
			}
		})
	}
}

func TestCheckFlags(t *testing.T) {
	t.Run("unknown flag", func(t *testing.T) {
		code, stdout, stderr := runInProcess(t, "check", "-conf", "x.yaml")
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "flag provided but not defined: -conf\n") {
			t.Errorf("run = %d, stdout %q, stderr %q; want 2 and the flag error", code, stdout, stderr)
		}
	})
	t.Run("extra argument", func(t *testing.T) {
		code, stdout, stderr := runInProcess(t, "check", "-config", "x.yaml", "extra")
		want := "ingress check: unexpected arguments [\"extra\"]\n"
		if code != 2 || stdout != "" || stderr != want {
			t.Errorf("run = %d, stdout %q, stderr %q; want 2 and %q", code, stdout, stderr, want)
		}
	})
	t.Run("default config path", func(t *testing.T) {
		// Run from an empty directory: check reads ./ingress.yaml.
		t.Chdir(t.TempDir())
		code, stdout, stderr := runInProcess(t, "check")
		want := "reading config: open ingress.yaml: no such file or directory\n"
		if code != 1 || stdout != "" || stderr != want {
			t.Errorf("run = %d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, want)
		}
	})
}

// TestCheckCommand runs `ingress check` on each directory under
// testdata/check, copied to a temporary directory beside dev certificates
// for *.production-orch-0000.neo4j.io (tls.crt, tls.key), and compares the
// exit code and output with its want.txt, where $DIR stands for the
// temporary directory. Regenerate with: go test -run TestCheckCommand -update
func TestCheckCommand(t *testing.T) {
	certDir := t.TempDir()
	certs, err := tlsconfig.WriteDevCerts(certDir, []string{"*.production-orch-0000.neo4j.io"})
	if err != nil {
		t.Fatal(err)
	}
	cases, err := filepath.Glob(filepath.Join("testdata", "check", "*"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases under testdata/check (%v)", err)
	}
	for _, src := range cases {
		t.Run(filepath.Base(src), func(t *testing.T) {
			dir := t.TempDir()
			copyFile(t, certs.Cert, filepath.Join(dir, "tls.crt"))
			copyFile(t, certs.Key, filepath.Join(dir, "tls.key"))
			for _, name := range []string{"ingress.yaml", "routes.yaml"} {
				if _, err := os.Stat(filepath.Join(src, name)); err == nil {
					copyFile(t, filepath.Join(src, name), filepath.Join(dir, name))
				}
			}
			code, stdout, stderr := runInProcess(t, "check", "-config", filepath.Join(dir, "ingress.yaml"))
			got := fmt.Sprintf("exit %d\n-- stdout --\n%s-- stderr --\n%s", code, stdout, stderr)
			got = strings.ReplaceAll(got, dir, "$DIR")

			golden := filepath.Join(src, "want.txt")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("ingress check -config %s/ingress.yaml:\n%s\nwant:\n%s", src, got, want)
			}
			// Whatever the case, the exit code says whether there was an
			// error, and only a success prints to stdout.
			if (code == 0) != (stdout != "") {
				t.Errorf("exit %d with stdout %q", code, stdout)
			}
			if code != 0 && code != 1 {
				t.Errorf("exit %d, want 0 or 1", code)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
