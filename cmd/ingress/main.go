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

	"github.com/neo4j/private-ingress/internal/demo"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `usage: ingress <command> [flags]

commands:
  demo [-dir ./demo] [-real-ports]
                               run on an embedded default: dev CA, fake instances, loopback ports
                               (-real-ports: 443, 7687, 7474, 8491, DNS on 53, admin on 9090; needs root)
  serve -config ingress.yaml   run the ingress (and the DNS stub when dns.address is set)
  dns -config ingress.yaml     run only the DNS stub
  check -config ingress.yaml   validate config, routes and certificates; exit 1 on errors
  routes put -config ingress.yaml FILE...
                               validate instances (one routes.yaml entry per file) and write them to etcd
  routes delete -config ingress.yaml DBID [ORCH]
  routes list -config ingress.yaml
                               the instances in etcd (routes.etcd)
  version                      print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "ingress.yaml", "path to ingress.yaml")
	demoDir := fs.String("dir", "demo", "demo: where to write the dev CA, certificate and config")
	realPorts := fs.Bool("real-ports", false, "demo: listen on the production ports (443, 7687, 7474, 8491, DNS 53) of all addresses")
	var verb string
	switch cmd {
	case "routes":
		if len(args) == 0 {
			fmt.Fprintf(stderr, "ingress routes: put, delete or list\n%s", usage)
			return 2
		}
		verb, args = args[0], args[1:]
	case "serve", "check", "demo", "dns":
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "ingress %s\n", version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "ingress: unknown command %q\n%s", cmd, usage)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 && cmd != "routes" {
		fmt.Fprintf(stderr, "ingress %s: unexpected arguments %q\n", cmd, fs.Args())
		return 2
	}
	if cmd == "check" {
		return check(*configPath, stdout, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var err error
	switch cmd {
	case "demo":
		ports := demo.DefaultPorts()
		if *realPorts {
			ports = demo.RealPorts()
		}
		err = runDemo(ctx, demoOptions{Dir: *demoDir, Ports: ports, Stdout: stdout, Stderr: stderr})
	case "dns":
		err = serve(ctx, *configPath, true, stderr, nil)
	case "routes":
		err = routesCommand(ctx, *configPath, append([]string{verb}, fs.Args()...), stdout, stderr)
	default:
		err = serve(ctx, *configPath, false, stderr, nil)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ingress: %v\n", err)
		return 1
	}
	return 0
}
