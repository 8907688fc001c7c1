// Package cli runs a command line of subcommands, each with a FlagSet of
// its own, so that every command keeps the same conventions: `prog cmd -h`
// prints that command's usage and flags only, to stdout, and exits 0; a
// flag the command does not take (another command's, say) is an error,
// exit 2; `prog help` and `prog -h` list the commands. Two-word commands
// ("routes put") form a group: `prog routes -h` lists it without running
// anything. cmd/ingress declares its commands as a table of these.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Command is one subcommand.
type Command struct {
	Name  string                    // "serve", or two words for a group's command: "routes put"
	Args  string                    // what follows the flags, for the usage ("FILE..."); empty: none is accepted
	Help  string                    // one line: what it does
	Flags func(fs *flag.FlagSet)    // defines the command's flags on fs; nil: none
	Run   func(args []string) error // runs it with the arguments after the flags
}

// ExitCode is an error a command returns to set the exit status alone,
// having said what went wrong itself (check prints its findings, then
// exits 1).
type ExitCode int

// Error names the status; Run prints nothing for an ExitCode.
func (e ExitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// isHelp reports whether arg asks for the usage where a command is expected.
func isHelp(arg string) bool { return slices.Contains([]string{"help", "-h", "-help", "--help"}, arg) }

// Run runs the command args name (the program's arguments, without the
// program's name) and returns the exit status: 0, 1 when the command
// fails (its error printed as "prog: error" unless it is an ExitCode),
// 2 for a usage error.
func Run(prog string, cmds []Command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage(prog, cmds, ""))
		return 2
	}
	name, args := args[0], args[1:]
	if isHelp(name) {
		fmt.Fprint(stdout, Usage(prog, cmds, ""))
		return 0
	}
	if slices.ContainsFunc(cmds, func(c Command) bool { return strings.HasPrefix(c.Name, name+" ") }) {
		switch { // a group: the next word names the command
		case len(args) == 0:
			fmt.Fprintf(stderr, "%s %s: which one?\n%s", prog, name, Usage(prog, cmds, name+" "))
			return 2
		case isHelp(args[0]):
			fmt.Fprint(stdout, Usage(prog, cmds, name+" "))
			return 0
		}
		name, args = name+" "+args[0], args[1:]
	}
	i := slices.IndexFunc(cmds, func(c Command) bool { return c.Name == name })
	if i < 0 {
		fmt.Fprintf(stderr, "%s: unknown command %q\n%s", prog, name, Usage(prog, cmds, ""))
		return 2
	}
	c := cmds[i]
	var out bytes.Buffer // the usage: on stdout if asked for (-h), on stderr after a flag error
	fs := flagSet(prog, c, &out)
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		io.Copy(stdout, &out)
		return 0
	case err != nil:
		io.Copy(stderr, &out)
		return 2
	case fs.NArg() > 0 && c.Args == "":
		fmt.Fprintf(stderr, "%s %s: unexpected arguments %q\n", prog, c.Name, fs.Args())
		return 2
	}
	var code ExitCode
	switch err := c.Run(fs.Args()); {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	default:
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
}

// flagSet returns c's FlagSet, writing its usage and errors to out.
func flagSet(prog string, c Command, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(prog+" "+c.Name, flag.ContinueOnError)
	fs.SetOutput(out)
	if c.Flags != nil {
		c.Flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: %s\n\n%s\n", synopsis(fs, c), c.Help)
		if hasFlags(fs) {
			fmt.Fprint(out, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// synopsis is c's usage line, made from its flags:
// "ingress demo [-dir demo] [-real-ports]".
func synopsis(fs *flag.FlagSet, c Command) string {
	words := []string{fs.Name()}
	fs.VisitAll(func(f *flag.Flag) {
		switch value, _ := flag.UnquoteUsage(f); {
		case value == "": // a boolean
			words = append(words, "[-"+f.Name+"]")
		case f.DefValue != "":
			words = append(words, "[-"+f.Name+" "+f.DefValue+"]")
		default: // the usage's `NAME`, or the type
			words = append(words, "[-"+f.Name+" "+value+"]")
		}
	})
	if c.Args != "" {
		words = append(words, c.Args)
	}
	return strings.Join(words, " ")
}

// Usage lists the commands whose name starts with prefix ("" for all, or
// a group's "routes ").
func Usage(prog string, cmds []Command, prefix string) string {
	var b strings.Builder
	name := strings.TrimSpace(prog + " " + prefix) // "ingress routes" for the routes group
	fmt.Fprintf(&b, "usage: %s <command> [flags] (%s <command> -h: its usage and flags)\n\ncommands:\n", name, name)
	for _, c := range cmds {
		if strings.HasPrefix(c.Name, prefix) {
			fmt.Fprintf(&b, "  %s\n      %s\n", synopsis(flagSet(prog, c, io.Discard), c), c.Help)
		}
	}
	return b.String()
}
