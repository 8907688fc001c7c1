package main

import (
	"fmt"
	"io"

	"github.com/neo4j/private-ingress/internal/cli"
	"github.com/neo4j/private-ingress/internal/config"
)

// check prints every problem of a config and its routes and certificates as
// "file:line: message"; any error makes the exit status 1.
func check(path string, stdout, stderr io.Writer) error {
	summary, warnings, err := config.CheckFile(path)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "%s: warning: %s\n", path, w)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return cli.ExitCode(1)
	}
	fmt.Fprintln(stdout, summary)
	return nil
}
