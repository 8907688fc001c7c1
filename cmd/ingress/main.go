// Command ingress is the private ingress: a TLS/SNI proxy that splices
// connections for <dbid>.production-orch-<orch>.<domain> to that database's
// backends. Subcommands: serve, dns, check, demo, routes, version. It holds no logic of its
// own: flags, wiring and signals only.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/neo4j/private-ingress/internal/buildinfo"
	"github.com/neo4j/private-ingress/internal/cli"
	"github.com/neo4j/private-ingress/internal/demo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command line: each command with its own flags (internal/cli).
func run(args []string, stdout, stderr io.Writer) int {
	var configPath, pidfile, demoDir string
	var realPorts bool
	withConfig := func(fs *flag.FlagSet) { fs.StringVar(&configPath, "config", "ingress.yaml", "path to ingress.yaml") }
	serving := func(fs *flag.FlagSet) {
		withConfig(fs)
		fs.StringVar(&pidfile, "pidfile", "", "write the serving process's PID to `FILE` (the new process's after a SIGUSR2 hand-over)")
	}
	stop := func() {}
	defer func() { stop() }()
	ctx := func() (ctx context.Context) { // for the commands that stop on SIGTERM or Ctrl-C, not check's quick exit
		ctx, stop = signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		return ctx
	}
	routes := func(verb string) func([]string) error {
		return func(args []string) error {
			return routesCommand(ctx(), configPath, append([]string{verb}, args...), stdout, stderr)
		}
	}
	if len(args) > 0 && (args[0] == "-version" || args[0] == "--version") {
		args = append([]string{"version"}, args[1:]...)
	}
	return cli.Run("ingress", []cli.Command{
		{Name: "serve", Help: "run the ingress (and the DNS stub when dns.address is set)", Flags: serving,
			Run: func([]string) error { return serve(ctx(), configPath, false, pidfile, stderr, nil) }},
		{Name: "dns", Help: "run only the DNS stub", Flags: serving,
			Run: func([]string) error { return serve(ctx(), configPath, true, pidfile, stderr, nil) }},
		{Name: "check", Help: "validate config, routes and certificates; exit 1 on errors", Flags: withConfig,
			Run: func([]string) error { return check(configPath, stdout, stderr) }},
		{Name: "demo", Help: "run on an embedded default: dev CA, fake instances, loopback ports", Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&demoDir, "dir", "demo", "where to write the dev CA, certificate and config")
			fs.BoolVar(&realPorts, "real-ports", false, "listen on 443, 7687, 7474, 8491 and DNS 53 of every address, admin on 127.0.0.1:9090 (needs root)")
		}, Run: func([]string) error {
			ports := demo.DefaultPorts()
			if realPorts {
				ports = demo.RealPorts()
			}
			return runDemo(ctx(), demoOptions{Dir: demoDir, Ports: ports, Stdout: stdout, Stderr: stderr})
		}},
		{Name: "routes put", Args: "FILE...", Help: "validate instances (one routes.yaml entry per file) and write them to etcd", Flags: withConfig, Run: routes("put")},
		{Name: "routes delete", Args: "DBID [ORCH]", Help: "delete an instance from etcd (ORCH: the first served orch)", Flags: withConfig, Run: routes("delete")},
		{Name: "routes list", Help: "list the instances in etcd (routes.etcd)", Flags: withConfig, Run: routes("list")},
		{Name: "version", Help: "print the version, VCS revision and time, Go version and flavour",
			Run: func([]string) error { fmt.Fprintln(stdout, buildinfo.Read()); return nil }},
	}, args, stdout, stderr)
}
