package ingress_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/neo4j/private-ingress/internal/bolt"
	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/loopback"
)

// explainRoutes has a public instance, a private one, a paused one, one
// whose backends refuse connections and, through the certificate option,
// a name in an orch the ingress holds a certificate for but does not serve.
const explainRoutes = `
instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {https: [%[1]q], http: [%[1]q], bolt: [%[1]q], arrow: [%[1]q]}}
  - {dbid: private1, orch: "0000", public: false, endpoints: [vpce-0a1b2c3d4e5f6a7b8], backends: {https: [%[1]q], http: [%[1]q], bolt: [%[1]q], arrow: [%[1]q]}}
  - {dbid: paused01, orch: "0000", public: true, paused: true, backends: {https: [%[1]q], http: [%[1]q], bolt: [%[1]q], arrow: [%[1]q]}}
  - {dbid: down0001, orch: "0000", public: true, backends: {https: [%[2]q], http: [%[2]q], bolt: [%[2]q], arrow: [%[2]q]}}
`

// explainRoutesFor is explainRoutes with backend as the instances' backend.
func explainRoutesFor(t *testing.T, backend string) string {
	return fmt.Sprintf(explainRoutes, backend, loopback.Refused(t))
}

// withOtherOrchCert adds orch 9999 to the dev leaf, which the ingress does
// not serve: the one case where a wrong orch can be explained.
func withOtherOrchCert(s *envSetup) {
	s.certNames = append(s.certNames, "*.production-orch-9999.neo4j.io")
}

// refusals are the explained cases, with what each service answers.
var refusals = []struct {
	name, sni, result string
	status            int
	grpcStatus        string
	boltCode          string
	says              string
	dialled           bool // known only once a dial failed: after the handshake, so never alerted
}{
	{"unknown dbid", fqdn("nosuchdb"), "unknown_dbid", 404, "5", "Neo.ClientError.Database.DatabaseNotFound",
		"database nosuchdb not found in production-orch-0000.neo4j.io", false},
	{"private instance without endpoint", fqdn("private1"), "denied", 403, "7", "Neo.ClientError.Security.Forbidden",
		"public traffic is disabled for this instance; connect through its private endpoint", false},
	{"orch not served", "abcd1234.production-orch-9999.neo4j.io", "unknown_host", 421, "5", "Neo.ClientError.Database.DatabaseNotFound",
		"production-orch-9999.neo4j.io is not served through this endpoint", false},
	{"paused instance", fqdn("paused01"), "paused", 503, "9", "Neo.ClientError.Request.Invalid",
		"database paused01 is paused; resume it", false},
	{"instance not answering", fqdn("down0001"), "backend_unavailable", 503, "14", "Neo.TransientError.General.DatabaseUnavailable",
		"database down0001 is unavailable: it is not answering", true},
}

func TestExplainedRefusalsOverHTTPWithCurl(t *testing.T) {
	curl := testenv.Command(t, "curl")
	b := startBackend(t, "b")
	e := startEnv(t, explainRoutesFor(t, b.addr()), withOtherOrchCert)
	for _, service := range []string{"https", "http"} {
		for _, flag := range []string{"--http2", "--http1.1"} {
			for _, tc := range refusals {
				t.Run(service+flag+"/"+tc.name, func(t *testing.T) {
					before := e.count(service, tc.result)
					_, port, _ := net.SplitHostPort(e.addr(service))
					host := strings.SplitN(tc.sni, ":", 2)[0]
					ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
					defer cancel()
					out, err := exec.CommandContext(ctx, curl, "-sS", flag, "--cacert", e.caFile,
						"--resolve", host+":"+port+":127.0.0.1", "-w", "\n%{http_code} %{http_version}",
						"https://"+host+":"+port+"/db/neo4j/tx").CombinedOutput()
					if err != nil {
						t.Fatalf("curl: %v\n%s", err, out)
					}
					text := strings.TrimSpace(string(out))
					cut := strings.LastIndexByte(text, '\n')
					body, status := text[:max(cut, 0)], text[cut+1:]
					wantVersion := map[string]string{"--http2": "2", "--http1.1": "1.1"}[flag]
					if status != fmt.Sprintf("%d %s", tc.status, wantVersion) {
						t.Errorf("status and version %q, want %d %s", status, tc.status, wantVersion)
					}
					var got struct{ Error, DBID, Hint string }
					if err := json.Unmarshal([]byte(body), &got); err != nil {
						t.Fatalf("body %q: %v", body, err)
					}
					if msg := got.Error + "; " + got.Hint; !strings.Contains(msg, tc.says) || got.DBID != strings.SplitN(host, ".", 2)[0] {
						t.Errorf("body %q, want it to say %q", body, tc.says)
					}
					e.waitCount(service, tc.result, before+1)
				})
			}
		}
	}
	if n := b.accepted.Load(); n != 0 {
		t.Errorf("the backend saw %d connections, want 0: a refusal dials nothing", n)
	}
}

// boltHello is what the official drivers send first: the preamble with
// their version proposals, then HELLO and LOGON pipelined, then (for a
// neo4j:// URI) ROUTE and, once that failed, RESET and a query.
func boltHello() []byte {
	b := []byte{0x60, 0x60, 0xB0, 0x17, 0, 0, 1, 0xFF, 0, 8, 8, 5, 0, 2, 4, 4, 0, 0, 0, 3}
	b = bolt.AppendMessage(b, bolt.MsgHello, map[string]any{"user_agent": "test/1"})
	b = bolt.AppendMessage(b, bolt.MsgLogon, map[string]any{"scheme": "basic", "principal": "neo4j", "credentials": "x"})
	b = bolt.AppendMessage(b, bolt.MsgRoute, map[string]any{"address": "x:7687"}, []any{}, map[string]any{})
	b = bolt.AppendMessage(b, bolt.MsgPull, map[string]any{"n": int64(-1)})
	b = bolt.AppendMessage(b, bolt.MsgReset)
	return bolt.AppendMessage(b, bolt.MsgRun, "RETURN 1", map[string]any{}, map[string]any{})
}

func TestExplainedRefusalsOverBolt(t *testing.T) {
	b := startBackend(t, "b")
	e := startEnv(t, explainRoutesFor(t, b.addr()), withOtherOrchCert)
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			c, err := e.dial("bolt", tc.sni)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer c.Close()
			c.Write(boltHello())
			r := bufio.NewReader(c)
			var version [4]byte
			if _, err := io.ReadFull(r, version[:]); err != nil || version != [4]byte{0, 0, 8, 5} {
				t.Fatalf("version answer %x, %v; want 5.8", version, err)
			}
			// HELLO, LOGON: SUCCESS; ROUTE: FAILURE; PULL: IGNORED; RESET: SUCCESS; RUN: FAILURE.
			for i, want := range []byte{bolt.MsgSuccess, bolt.MsgSuccess, bolt.MsgFailure, bolt.MsgIgnored, bolt.MsgSuccess, bolt.MsgFailure} {
				msg, err := bolt.ReadMessage(r)
				if err != nil || msg.Tag != want {
					t.Fatalf("answer %d: %+v, %v; want tag %#x", i, msg, err, want)
				}
				if want != bolt.MsgFailure {
					continue
				}
				meta := msg.Fields[0].(map[string]any)
				if meta["code"] != tc.boltCode || meta["neo4j_code"] != tc.boltCode || !strings.Contains(meta["message"].(string), tc.says) {
					t.Errorf("FAILURE %v, want %s saying %q", meta, tc.boltCode, tc.says)
				}
			}
			c.Write(bolt.AppendMessage(nil, bolt.MsgGoodbye))
			if rest, err := io.ReadAll(r); len(rest) != 0 || err != nil {
				t.Errorf("after GOODBYE: %x, %v; want a clean close", rest, err)
			}
		})
	}
}

func TestExplainedRefusalsOverGRPC(t *testing.T) {
	b := startBackend(t, "b")
	e := startEnv(t, explainRoutesFor(t, b.addr()), withOtherOrchCert)
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			transport := &http2.Transport{DialTLSContext: func(ctx context.Context, network, _ string, _ *tls.Config) (net.Conn, error) {
				return e.dial("arrow", tc.sni, func(c *tls.Config) { c.NextProtos = []string{"h2"} })
			}}
			defer transport.CloseIdleConnections()
			req, _ := http.NewRequest("POST", "https://"+tc.sni+"/arrow.flight.protocol.FlightService/ListFlights", strings.NewReader("\x00\x00\x00\x00\x00"))
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("TE", "trailers")
			resp, err := transport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// A trailers-only answer: the status is in the headers.
			if resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != tc.grpcStatus ||
				!strings.Contains(resp.Header.Get("Grpc-Message"), tc.says) {
				t.Errorf("answer %d %v, want grpc-status %s saying %q", resp.StatusCode, resp.Header, tc.grpcStatus, tc.says)
			}
		})
	}
}

// TestWhatIsNeverExplained: names outside every zone, no SNI, and an orch
// no certificate covers still end in the alert, in explain mode too.
func TestWhatIsNeverExplained(t *testing.T) {
	b := startBackend(t, "b")
	e := startEnv(t, explainRoutesFor(t, b.addr()))
	for _, tc := range []struct{ name, sni, result string }{
		{"other domain", "abcd1234.production-orch-0000.example.com", "unknown_host"},
		{"extra label", "x.abcd1234.production-orch-0000.neo4j.io", "unknown_host"},
		{"orch without a certificate", "abcd1234.production-orch-9999.neo4j.io", "unknown_host"},
		{"no SNI", "", "no_sni"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.count("https", tc.result)
			c, err := e.dial("https", tc.sni, func(c *tls.Config) { c.InsecureSkipVerify = true })
			if err == nil {
				c.Close()
				t.Fatal("handshake succeeded, want the alert")
			}
			if !strings.Contains(err.Error(), "unrecognized name") {
				t.Errorf("error %q, want the unrecognized_name alert", err)
			}
			e.waitCount("https", tc.result, before+1)
		})
	}
}

func TestAlertModeDoesNotExplain(t *testing.T) {
	b := startBackend(t, "b")
	e := startEnv(t, explainRoutesFor(t, b.addr()), withOtherOrchCert, withAlerts)
	for _, tc := range refusals {
		if tc.dialled {
			continue // the handshake was over: closed, as TestUnavailableInAlertMode checks
		}
		t.Run(tc.name, func(t *testing.T) {
			c, err := e.dial("https", tc.sni)
			if err == nil {
				c.Close()
				t.Fatal("handshake succeeded, want the alert")
			}
			if !strings.Contains(err.Error(), "unrecognized name") {
				t.Errorf("error %q, want the unrecognized_name alert", err)
			}
		})
	}
}

// TestExplainedRefusalIsBoundedByTheHandshakeTimeout: a client that
// completes TLS to a refused name and then sends nothing is closed at the
// handshake timeout, like any other client that stalls.
func TestExplainedRefusalIsBoundedByTheHandshakeTimeout(t *testing.T) {
	b := startBackend(t, "b")
	e := startEnv(t, explainRoutesFor(t, b.addr()), func(s *envSetup) {
		s.Timeouts.Handshake = 300 * time.Millisecond
	})
	for _, service := range []string{"bolt", "https", "arrow"} {
		t.Run(service, func(t *testing.T) {
			c, err := e.dial(service, fqdn("nosuchdb"), func(c *tls.Config) {
				if service != "bolt" {
					c.NextProtos = []string{"h2"}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(testenv.WaitTimeout)) // a failure bound
			_, err = io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the ingress held a silent refused connection past its handshake timeout")
			}
		})
	}
}

// TestUnavailableInAlertMode: with refusals alerted, an instance that does
// not answer is found out after the handshake, when no alert can be sent:
// the connection is closed, with nothing said, and counted.
func TestUnavailableInAlertMode(t *testing.T) {
	b := startBackend(t, "b")
	e := startEnv(t, explainRoutesFor(t, b.addr()), withAlerts)
	c, err := e.dial("https", fqdn("down0001"))
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("read %d bytes, %v; want the connection closed", n, err)
	}
	e.waitCount("https", "backend_unavailable", 1)
}
