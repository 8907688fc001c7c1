package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j/config"

	"github.com/neo4j/private-ingress/internal/demo"
)

// useDNSStub makes this test process resolve names through the stub, as
// an application in the VPC does through its resolver. Go's resolver still
// reads /etc/hosts first, so localhost is unaffected.
func useDNSStub(t *testing.T, addr string) {
	old := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(func() { net.DefaultResolver = old })
}

func TestGoDriverThroughTheIngress(t *testing.T) {
	addrs, _ := startDemo(t)
	useDNSStub(t, addrs["dns"])
	roots := demoRoots(t, addrs)
	_, port, _ := net.SplitHostPort(addrs["bolt"])
	ctx := context.Background()
	for _, dbid := range demo.DBIDs() {
		t.Run(dbid, func(t *testing.T) {
			uri := "neo4j+s://" + dbid + ".production-orch-0000.neo4j.io:" + port
			driver, err := neo4j.NewDriverWithContext(uri, neo4j.BasicAuth("neo4j", "password", ""), func(c *config.Config) {
				c.TlsConfig = &tls.Config{RootCAs: roots}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer driver.Close(ctx)
			if err := driver.VerifyConnectivity(ctx); err != nil {
				t.Fatalf("verify connectivity: %v", err)
			}
			info, err := driver.GetServerInfo(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: Bolt %v, %s", dbid, info.ProtocolVersion(), info.Agent())
			session := driver.NewSession(ctx, neo4j.SessionConfig{})
			defer session.Close(ctx)
			// ExecuteWrite and ExecuteRead follow the routing table the
			// instance sends, whose entries name its own FQDN: back through
			// the ingress.
			wrote, err := session.ExecuteWrite(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
				res, err := tx.Run(ctx, "CREATE (n) RETURN instance() AS instance", nil)
				if err != nil {
					return nil, err
				}
				rec, err := res.Single(ctx)
				if err != nil {
					return nil, err
				}
				return rec.Values[0], nil
			})
			if err != nil || wrote != dbid {
				t.Fatalf("ExecuteWrite: %v, %v; want %s", wrote, err, dbid)
			}
			read, err := session.ExecuteRead(ctx, func(tx neo4j.ManagedTransaction) (any, error) {
				res, err := tx.Run(ctx, "RETURN $x AS x, instance() AS instance", map[string]any{"x": int64(42)})
				if err != nil {
					return nil, err
				}
				rec, err := res.Single(ctx)
				if err != nil {
					return nil, err
				}
				return rec.Values, nil
			})
			if err != nil {
				t.Fatalf("ExecuteRead: %v", err)
			}
			if v := read.([]any); v[0] != int64(42) || v[1] != dbid {
				t.Fatalf("ExecuteRead returned %v, want [42 %s]", v, dbid)
			}
		})
	}
}

func TestJSDriverThroughTheIngress(t *testing.T) {
	node, modules := needJSDriver(t)
	addrs, _ := startDemo(t)
	_, port, _ := net.SplitHostPort(addrs["bolt"])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"testdata/driver.js", addrs["dns"], port}, demo.DBIDs()...)...)
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+addrs["ca"], "NODE_PATH="+modules)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node driver.js: %v\n%s\n%s", err, out, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(demo.DBIDs()) {
		t.Fatalf("driver.js printed %q", out)
	}
	for i, line := range lines {
		var r struct {
			DBID, Write, Read, X string
			Protocol             any
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		want := demo.DBIDs()[i]
		if r.DBID != want || r.Write != want || r.Read != want || r.X != "hello" {
			t.Errorf("JS driver for %s: %+v", want, r)
		}
		t.Logf("JS driver, %s: Bolt %v", r.DBID, r.Protocol)
	}
}
