// Package buildinfo says which build of the ingress is running: the
// version stamped at link time, the VCS revision and commit time the Go
// toolchain recorded, the Go version and the crypto flavour. `ingress
// version` prints it and /metrics exports it (ingress_build_info), so an
// operator can tell which build answers without access to its binary.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/neo4j/private-ingress/internal/opensslsign"
)

// version is set at link time (the Makefile and Dockerfile pass
// -ldflags "-X github.com/neo4j/private-ingress/internal/buildinfo.version=v1.2.3");
// a plain go build says dev.
var version = "dev"

// unknown stands for what the build did not record: go run and go test
// binaries, and builds outside a checkout (the Dockerfile's: .git is not
// copied) or with -buildvcs=false, carry no VCS settings.
const unknown = "unknown"

// Info is one build's identity. No field holds a space: `ingress version`
// prints them as one line of fields.
type Info struct {
	Version   string // the link-time version, or "dev"
	Revision  string // the VCS revision, "+dirty" when built from a modified tree, or "unknown"
	Time      string // the revision's commit time (RFC 3339), or "unknown"
	GoVersion string // the toolchain's: go1.26.8
	Flavour   string // "openssl" when RSA and ECDSA sign through OpenSSL, else "pure-go"
}

// Read returns this binary's build info.
func Read() Info {
	bi, _ := debug.ReadBuildInfo() // nil only in a binary built without module support
	return fromBuildInfo(bi, opensslsign.Available)
}

func fromBuildInfo(bi *debug.BuildInfo, openssl bool) Info {
	i := Info{Version: version, Revision: unknown, Time: unknown, GoVersion: runtime.Version(), Flavour: "pure-go"}
	if openssl { // the signer's own build constraint (openssl && cgo), not the tag alone
		i.Flavour = "openssl"
	}
	modified := false
	if bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				i.Revision = s.Value
			case "vcs.time":
				i.Time = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified && i.Revision != unknown {
		i.Revision += "+dirty" // the revision alone would claim code it does not hold
	}
	return i
}

// String is the line `ingress version` prints:
// "ingress <version> <revision> <vcs time> <go version> <flavour>".
func (i Info) String() string {
	return strings.Join([]string{"ingress", i.Version, i.Revision, i.Time, i.GoVersion, i.Flavour}, " ")
}

// Collector returns the ingress_build_info gauge, always 1, whose labels
// name this build: a dashboard joins it to any other series to say which
// build produced them, and a fleet mid-upgrade shows up as two values.
func Collector() prometheus.Collector {
	i := Read()
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ingress_build_info",
		Help: "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{
			"version": i.Version, "revision": i.Revision, "goversion": i.GoVersion, "flavour": i.Flavour,
		},
	}, func() float64 { return 1 })
}
