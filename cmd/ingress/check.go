package main

import (
	"fmt"
	"io"

	"github.com/neo4j/private-ingress/internal/config"
)

// check prints every problem of a config and its routes and certificates as
// "file:line: message" and returns 1 if there is any error.
func check(path string, stdout, stderr io.Writer) int {
	summary, warnings, err := config.CheckFile(path)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "%s: warning: %s\n", path, w)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, summary)
	return 0
}
