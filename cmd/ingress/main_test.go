package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	for _, arg := range []string{"version", "-version", "--version"} {
		t.Run(arg, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, arg)
			if code != 0 || stdout != "ingress dev\n" || stderr != "" {
				t.Errorf("run(%s) = %d, stdout %q, stderr %q; want 0, %q, nothing", arg, code, stdout, stderr, "ingress dev\n")
			}
		})
	}
}

func TestUsage(t *testing.T) {
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
	if !strings.Contains(usage, "check -config ingress.yaml") || !strings.Contains(usage, "version") {
		t.Errorf("usage does not list check and version:\n%s", usage)
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
