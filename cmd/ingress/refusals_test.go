package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/neo4j/private-ingress/internal/demo"
	"github.com/neo4j/private-ingress/internal/testenv"
)

// refused are the demo's names that the ingress refuses and explains, with
// what the clients must be told.
var refused = []struct {
	dbid     string
	boltCode string
	grpcCode codes.Code
	says     string
	retried  bool // by the drivers: only an instance that may come back soon
}{
	{"nosuchdb", "Neo.ClientError.Database.DatabaseNotFound", codes.NotFound, "database nosuchdb not found", false},
	{demo.PrivateDBID, "Neo.ClientError.Security.Forbidden", codes.PermissionDenied,
		"public traffic is disabled for this instance; connect through its private endpoint", false},
	{demo.PausedDBID, "Neo.ClientError.Request.Invalid", codes.FailedPrecondition, "database 5ca1ab1e is paused", false},
	{demo.DownDBID, "Neo.TransientError.General.DatabaseUnavailable", codes.Unavailable, "database deadbeef is unavailable", true},
}

func demoRoots(t *testing.T, addrs map[string]string) *x509.CertPool {
	t.Helper()
	caPEM, err := os.ReadFile(addrs["ca"])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return roots
}

// TestGoDriverIsToldWhy: the official Go driver surfaces the refusal as a
// Neo4j error with its status code and the reason.
func TestGoDriverIsToldWhy(t *testing.T) {
	addrs, _ := startDemo(t)
	useDNSStub(t, addrs["dns"])
	roots := demoRoots(t, addrs)
	_, port, _ := net.SplitHostPort(addrs["bolt"])
	for _, tc := range refused {
		t.Run(tc.dbid, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			driver, err := neo4j.NewDriverWithContext("neo4j+s://"+demo.FQDN(tc.dbid)+":"+port, neo4j.BasicAuth("neo4j", "password", ""),
				func(c *config.Config) { c.TlsConfig = &tls.Config{RootCAs: roots} })
			if err != nil {
				t.Fatal(err)
			}
			defer driver.Close(ctx)
			err = driver.VerifyConnectivity(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.boltCode) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("VerifyConnectivity: %v\nwant an error with %s saying %q", err, tc.boltCode, tc.says)
			}
			if neo4j.IsRetryable(err) != tc.retried {
				t.Errorf("neo4j.IsRetryable(%v) = %v, want %v", err, !tc.retried, tc.retried)
			}
			t.Logf("Go driver: %v", err)
		})
	}
}

func TestJSDriverIsToldWhy(t *testing.T) {
	node, modules := needJSDriver(t)
	addrs, _ := startDemo(t)
	_, port, _ := net.SplitHostPort(addrs["bolt"])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"testdata/driver.js", "--refused", addrs["dns"], port}
	for _, tc := range refused {
		args = append(args, tc.dbid)
	}
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+addrs["ca"], "NODE_PATH="+modules)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node driver.js --refused: %v\n%s\n%s", err, out, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(refused) {
		t.Fatalf("driver.js printed %q", out)
	}
	for i, line := range lines {
		var r struct {
			DBID, Code, Message, CauseCode, CauseMessage string
			Retryable                                    bool
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		tc := refused[i]
		if r.Code == "ServiceUnavailable" && tc.retried { // discovery failed on the FAILURE, its cause
			r.Code, r.Message = r.CauseCode, r.CauseMessage
		}
		if r.DBID != tc.dbid || r.Code != tc.boltCode || !strings.Contains(r.Message, tc.says) || r.Retryable != tc.retried {
			t.Errorf("JS driver for %s: %s\nwant %s saying %q, retryable %v", tc.dbid, line, tc.boltCode, tc.says, tc.retried)
		}
		t.Logf("JS driver: %s: %s", r.Code, r.Message)
	}
}

// TestFlightClientIsToldWhy: an Arrow Flight client gets the gRPC status.
func TestFlightClientIsToldWhy(t *testing.T) {
	addrs, _ := startDemo(t)
	roots := demoRoots(t, addrs)
	for _, tc := range refused {
		t.Run(tc.dbid, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			creds := credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: demo.FQDN(tc.dbid)})
			c, err := flight.NewClientWithMiddleware(addrs["arrow"], nil, nil, grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			list, err := c.ListFlights(ctx, &flight.Criteria{})
			if err == nil {
				_, err = list.Recv()
			}
			if s, _ := status.FromError(err); s.Code() != tc.grpcCode || !strings.Contains(s.Message(), tc.says) {
				t.Fatalf("ListFlights: %v, want %v saying %q", err, tc.grpcCode, tc.says)
			}
		})
	}
}

// needJSDriver finds node and the driver that .ci/run installs into
// .cache/js: an external test (see testenv.External).
func needJSDriver(t *testing.T) (node, modules string) {
	t.Helper()
	testenv.External(t)
	node, err := exec.LookPath("node")
	modules = filepath.Join(testenv.CacheDir(), "js", "node_modules")
	if _, statErr := os.Stat(filepath.Join(modules, "neo4j-driver")); err != nil || statErr != nil {
		testenv.Missing(t, "node or neo4j-driver", "npm install --prefix .cache/js neo4j-driver@6.3.0")
	}
	return node, modules
}
