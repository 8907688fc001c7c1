package cli

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

// commands is a table like cmd/ingress's: ran records what ran.
func commands(ran *[]string) []Command {
	var config, pidfile string
	var verbose bool
	withConfig := func(fs *flag.FlagSet) { fs.StringVar(&config, "config", "app.yaml", "the config") }
	record := func(name string, err error) func([]string) error {
		return func(args []string) error {
			*ran = append(*ran, strings.Join(append([]string{name, config, pidfile}, args...), " "))
			return err
		}
	}
	return []Command{
		{Name: "serve", Help: "serve it", Run: record("serve", nil), Flags: func(fs *flag.FlagSet) {
			withConfig(fs)
			fs.StringVar(&pidfile, "pidfile", "", "the PID `FILE`")
			fs.BoolVar(&verbose, "v", false, "say more")
		}},
		{Name: "check", Help: "check it", Flags: withConfig, Run: record("check", ExitCode(1))},
		{Name: "fail", Help: "fail", Run: record("fail", errors.New("it broke"))},
		{Name: "group put", Args: "FILE...", Help: "put files", Flags: withConfig, Run: record("put", nil)},
		{Name: "group list", Help: "list", Flags: withConfig, Run: record("list", nil)},
	}
}

func TestRun(t *testing.T) {
	var none []string
	usage := Usage("app", commands(&none), "")
	group := Usage("app", commands(&none), "group ")
	for _, c := range []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string // exact, or a prefix when it ends in "…"
		ran            string
	}{
		{"no command", nil, 2, "", usage, ""},
		{"help", []string{"help"}, 0, usage, "", ""},
		{"-h", []string{"-h"}, 0, usage, "", ""},
		{"unknown", []string{"nope"}, 2, "", "app: unknown command \"nope\"\n" + usage, ""},
		{"defaults", []string{"serve"}, 0, "", "", "serve app.yaml "},
		{"flags", []string{"serve", "-config", "x.yaml", "-pidfile", "p", "-v"}, 0, "", "", "serve x.yaml p"},
		{"command -h", []string{"serve", "-h"}, 0, "usage: app serve [-config app.yaml] [-pidfile FILE] [-v]\n\nserve it\n\nflags:\n  -config string…", "", ""},
		{"another's flag", []string{"check", "-pidfile", "p"}, 2, "", "flag provided but not defined: -pidfile\nusage: app check [-config app.yaml]\n…", ""},
		{"unexpected arguments", []string{"serve", "extra"}, 2, "", "app serve: unexpected arguments [\"extra\"]\n", ""},
		{"exit code", []string{"check"}, 1, "", "", "check app.yaml "},
		{"error", []string{"fail"}, 1, "", "app: it broke\n", "fail  "},
		{"no flags -h", []string{"fail", "-h"}, 0, "usage: app fail\n\nfail\n", "", ""},
		{"group", []string{"group"}, 2, "", "app group: which one?\n" + group, ""},
		{"group -h", []string{"group", "-h"}, 0, group, "", ""},
		{"group command", []string{"group", "put", "-config", "g.yaml", "a", "b"}, 0, "", "", "put g.yaml  a b"},
		{"group command -h", []string{"group", "put", "-h"}, 0, "usage: app group put [-config app.yaml] FILE...\n…", "", ""},
		{"group unknown", []string{"group", "nope"}, 2, "", "app: unknown command \"group nope\"\n…", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ran []string
			var stdout, stderr bytes.Buffer
			code := Run("app", commands(&ran), c.args, &stdout, &stderr)
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			for _, out := range []struct{ name, got, want string }{{"stdout", stdout.String(), c.stdout}, {"stderr", stderr.String(), c.stderr}} {
				if prefix, ok := strings.CutSuffix(out.want, "…"); ok && !strings.HasPrefix(out.got, prefix) || !ok && out.got != out.want {
					t.Errorf("%s:\n%s\nwant:\n%s", out.name, out.got, out.want)
				}
			}
			if got := strings.Join(ran, "|"); got != c.ran {
				t.Errorf("ran %q, want %q", got, c.ran)
			}
		})
	}
	for _, want := range []string{"usage: app <command>", "\n  app serve [-config app.yaml] [-pidfile FILE] [-v]\n      serve it\n", "\n  app group put [-config app.yaml] FILE...\n"} {
		if !strings.Contains(usage, want) {
			t.Errorf("usage lacks %q:\n%s", want, usage)
		}
	}
	if !strings.HasPrefix(group, "usage: app group <command>") || strings.Contains(group, "serve") {
		t.Errorf("the group's usage:\n%s", group)
	}
}
