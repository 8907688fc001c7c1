package demo

import (
	"bufio"
	"context"
	"errors"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/neo4j/private-ingress/internal/bolt"
	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/loopback"
)

// startBolt serves a fake instance for dbid on 127.0.0.1:0.
func startBolt(t *testing.T, dbid string) (*BoltServer, string) {
	t.Helper()
	ln := loopback.Listen(t)
	b := NewBolt(dbid)
	done := make(chan struct{})
	go func() { b.Serve(ln); close(done) }()
	t.Cleanup(func() {
		ln.Close()
		select {
		case <-done:
		case <-time.After(testenv.WaitTimeout):
			t.Error("Serve did not return after the listener closed")
		}
	})
	return b, ln.Addr().String()
}

func TestBoltWithTheGoDriver(t *testing.T) {
	_, addr := startBolt(t, "abcd1234")
	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	defer cancel()
	driver, err := neo4j.NewDriverWithContext("bolt://"+addr, neo4j.BasicAuth("neo4j", "secret", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer driver.Close(ctx)

	queries := []struct {
		name   string
		query  string
		params map[string]any
		keys   []string
		values []any
	}{
		{"literal", "RETURN 1", nil, []string{"1"}, []any{int64(1)}},
		{"parameters", "RETURN $x AS x, $s AS s", map[string]any{"x": int64(42), "s": "hi"}, []string{"x", "s"}, []any{int64(42), "hi"}},
		{"nested parameter", "RETURN $m AS m", map[string]any{"m": map[string]any{"l": []any{1.5, true, nil}}},
			[]string{"m"}, []any{map[string]any{"l": []any{1.5, true, nil}}}},
		{"which instance", "CREATE (n) RETURN instance() AS instance, 'a, b' AS s", nil, []string{"instance", "s"}, []any{"abcd1234", "a, b"}},
	}
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			res, err := neo4j.ExecuteQuery(ctx, driver, q.query, q.params, neo4j.EagerResultTransformer)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Records) != 1 || !reflect.DeepEqual(res.Keys, q.keys) || !reflect.DeepEqual(res.Records[0].Values, q.values) {
				t.Fatalf("%s: keys %v, records %v; want %v %v", q.query, res.Keys, res.Records, q.keys, q.values)
			}
		})
	}

	t.Run("errors reach the driver with their code, and the connection recovers", func(t *testing.T) {
		session := driver.NewSession(ctx, neo4j.SessionConfig{})
		defer session.Close(ctx)
		_, err := session.Run(ctx, "MATCH (n) RETURN n.name", nil)
		var neoErr *neo4j.Neo4jError
		if !errors.As(err, &neoErr) || neoErr.Code != "Neo.ClientError.Statement.SyntaxError" {
			t.Fatalf("unknown expression: %v, want a SyntaxError", err)
		}
		_, err = session.Run(ctx, "RETURN $missing", nil)
		if !errors.As(err, &neoErr) || neoErr.Code != "Neo.ClientError.Statement.ParameterMissing" {
			t.Fatalf("missing parameter: %v", err)
		}
		res, err := session.Run(ctx, "RETURN 'again' AS v", nil)
		if err != nil {
			t.Fatal(err)
		}
		if rec, err := res.Single(ctx); err != nil || rec.Values[0] != "again" {
			t.Fatalf("after the failures: %v, %v", rec, err)
		}
	})
}

// TestBoltRoutingTable checks what ROUTE answers with a raw Bolt 4.4
// client: every role names the instance's FQDN on the advertised port.
func TestBoltRoutingTable(t *testing.T) {
	b, addr := startBolt(t, "ef567890")
	b.Advertise("17687")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	c.Write([]byte{0x60, 0x60, 0xB0, 0x17, 0, 0, 4, 4, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0})
	var answer [4]byte
	if _, err := c.Read(answer[:]); err != nil || answer != [4]byte{0, 0, 4, 4} {
		t.Fatalf("handshake answer %x, %v; want 4.4", answer, err)
	}
	var req []byte
	req = bolt.AppendMessage(req, bolt.MsgHello, map[string]any{"user_agent": "test", "scheme": "none"})
	req = bolt.AppendMessage(req, bolt.MsgRoute, map[string]any{"address": "x:1"}, []any{}, map[string]any{"db": "neo4j"})
	c.Write(req)
	r := bufio.NewReader(c)
	if hello, err := bolt.ReadMessage(r); err != nil || hello.Tag != bolt.MsgSuccess {
		t.Fatalf("HELLO answer %+v, %v", hello, err)
	}
	route, err := bolt.ReadMessage(r)
	if err != nil || route.Tag != bolt.MsgSuccess {
		t.Fatalf("ROUTE answer %+v, %v", route, err)
	}
	rt := route.Fields[0].(map[string]any)["rt"].(map[string]any)
	want := []any{"ef567890.production-orch-0000.neo4j.io:17687"}
	for _, s := range rt["servers"].([]any) {
		server := s.(map[string]any)
		if !reflect.DeepEqual(server["addresses"], want) {
			t.Errorf("%v addresses = %v, want %v", server["role"], server["addresses"], want)
		}
	}
	if len(rt["servers"].([]any)) != 3 || rt["db"] != "neo4j" {
		t.Errorf("routing table %v", rt)
	}
}
