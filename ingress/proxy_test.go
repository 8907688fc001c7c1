package ingress_test

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/pires/go-proxyproto/tlvparse"
	"go.uber.org/zap/zapcore"

	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/loopback"
	"github.com/neo4j/private-ingress/routing"
)

// ppBackend greets with the client address and the endpoint id of the
// PROXY header the ingress sent it, then echoes.
func ppBackend(t *testing.T, name string) string {
	t.Helper()
	return loopback.Serve(t, loopback.Listen(t), func(c net.Conn) {
		defer c.Close()
		pc := proxyproto.NewConn(c, proxyproto.WithPolicy(proxyproto.REQUIRE))
		h := pc.ProxyHeader()
		if h == nil {
			fmt.Fprintf(c, "%s: no PROXY header\n", name)
			return
		}
		tlvs, _ := h.TLVs()
		endpoint := tlvparse.FindAWSVPCEndpointID(tlvs)
		if id, ok := tlvparse.FindAzurePrivateEndpointLinkID(tlvs); ok {
			endpoint = fmt.Sprintf("azure:%d", id)
		}
		if id, ok := tlvparse.ExtractPSCConnectionID(tlvs); ok {
			endpoint = fmt.Sprintf("psc:%d", id)
		}
		fmt.Fprintf(pc, "hello %s from %s endpoint %q\n", name, h.SourceAddr, endpoint)
		io.Copy(pc, pc)
	})
}

func awsTLV(id string) proxyproto.TLV {
	return proxyproto.TLV{Type: 0xEA, Value: append([]byte{0x01}, id...)}
}

func azureTLV(id uint32) proxyproto.TLV {
	v := []byte{0x01, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(v[1:], id)
	return proxyproto.TLV{Type: 0xEE, Value: v}
}

func pscTLV(id uint64) proxyproto.TLV {
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, id)
	return proxyproto.TLV{Type: 0xE0, Value: v}
}

// clientAddr is the address the load balancer says the client has: it is
// only data in the header; nothing connects to it.
var clientAddr = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 44), Port: 50123}

func header(t *testing.T, tlvs ...proxyproto.TLV) *proxyproto.Header {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, clientAddr, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 7687})
	if err := h.SetTLVs(tlvs); err != nil {
		t.Fatal(err)
	}
	return h
}

// dialVia connects like a load balancer would: raw bytes first (a PROXY
// header, or anything), then TLS.
func (e *env) dialVia(service, sni string, prefix []byte) (*tls.Conn, *bufio.Reader, error) {
	raw, err := net.DialTimeout("tcp", e.addr(service), testenv.WaitTimeout)
	if err != nil {
		return nil, nil, err
	}
	raw.SetDeadline(time.Now().Add(testenv.WaitTimeout))
	if _, err := raw.Write(prefix); err != nil {
		raw.Close()
		return nil, nil, err
	}
	c := tls.Client(raw, &tls.Config{ServerName: sni, RootCAs: e.ca})
	if err := c.Handshake(); err != nil {
		raw.Close()
		return nil, nil, err
	}
	return c, bufio.NewReader(c), nil
}

func mustFormat(t *testing.T, h *proxyproto.Header) []byte {
	t.Helper()
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const privateRoutes = `
instances:
  - {dbid: awsdb001, orch: "0000", public: false, endpoints: [vpce-0a1b2c3d4e5f6a7b8], backends: {bolt: [%[1]q]}}
  - {dbid: azuredb1, orch: "0000", public: false, endpoints: ["azure:1234567"], backends: {bolt: [%[1]q]}}
  - {dbid: gcpdb001, orch: "0000", public: false, endpoints: ["psc:987654321"], backends: {bolt: [%[1]q]}}
  - {dbid: public01, orch: "0000", public: true, backends: {bolt: [%[1]q]}}
`

func withProxy(mode string, trusted ...string) envOption {
	return func(c *envSetup) {
		c.ProxyProtocol = ingress.ProxyProtocolConfig{Mode: mode, TrustedCIDRs: trusted}
		c.Backend.ProxyProtocol = true
	}
}

func TestPrivateEndpointAccess(t *testing.T) {
	backend := ppBackend(t, "b")
	e := startEnv(t, fmt.Sprintf(privateRoutes, backend), withProxy("optional", "127.0.0.0/8"), withAlerts)
	for _, tc := range []struct {
		name, dbid string
		prefix     []byte
		allowed    bool
		endpoint   string // the id the backend must hear of
	}{
		{"AWS endpoint reaches its instance", "awsdb001", mustFormat(t, header(t, awsTLV("vpce-0a1b2c3d4e5f6a7b8"))), true, "vpce-0a1b2c3d4e5f6a7b8"},
		{"Azure endpoint reaches its instance", "azuredb1", mustFormat(t, header(t, azureTLV(1234567))), true, "azure:1234567"},
		{"GCP endpoint reaches its instance", "gcpdb001", mustFormat(t, header(t, pscTLV(987654321))), true, "psc:987654321"},
		{"another instance's endpoint is denied", "awsdb001", mustFormat(t, header(t, azureTLV(1234567))), false, ""},
		{"an unknown endpoint is denied", "azuredb1", mustFormat(t, header(t, azureTLV(7))), false, ""},
		{"an endpoint is not let into a public instance it is not listed for", "public01", mustFormat(t, header(t, awsTLV("vpce-0a1b2c3d4e5f6a7b8"))), false, ""},
		{"public traffic (a header without endpoint) reaches a public instance", "public01", mustFormat(t, header(t)), true, ""},
		{"public traffic is denied a private instance", "awsdb001", mustFormat(t, header(t)), false, ""},
		{"no header at all is public traffic", "public01", nil, true, ""},
		{"no header is denied a private instance", "gcpdb001", nil, false, ""},
		{"PROXY v1 from a trusted balancer", "public01", []byte("PROXY TCP4 192.0.2.44 10.0.0.1 50123 7687\r\n"), true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.count("bolt", "denied")
			c, r, err := e.dialVia("bolt", fqdn(tc.dbid), tc.prefix)
			if !tc.allowed {
				if err == nil {
					c.Close()
					t.Fatal("handshake succeeded, want a refusal")
				}
				e.waitCount("bolt", "denied", before+1)
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer c.Close()
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			// The backend hears of the real client, not of the load balancer
			// or the ingress, and gets the endpoint TLV passed on.
			wantFrom := "192.0.2.44:50123"
			if tc.prefix == nil {
				wantFrom = "127.0.0.1:"
			}
			if !strings.Contains(line, "from "+wantFrom) {
				t.Errorf("backend greeting %q, want the client address %s", line, wantFrom)
			}
			if want := fmt.Sprintf("endpoint %q", tc.endpoint); !strings.Contains(line, want) {
				t.Errorf("backend greeting %q, want the endpoint passed on: %s", line, want)
			}
		})
	}
	// The log names the endpoint and the real client of a denied connection.
	var seen bool
	for _, entry := range e.logs.FilterMessage("connection").All() {
		m := entry.ContextMap()
		if m["result"] == "denied" && m["endpoint"] == "azure:1234567" && m["dbid"] == "awsdb001" &&
			strings.HasPrefix(m["client"].(string), "192.0.2.44:") {
			seen = true
		}
	}
	if !seen {
		t.Error("no denied log line with the dbid, the endpoint and the real client address")
	}
}

func TestProxyHeaderRefusals(t *testing.T) {
	backend := ppBackend(t, "b")
	routes := fmt.Sprintf(privateRoutes, backend)
	good := mustFormat(t, header(t, awsTLV("vpce-0a1b2c3d4e5f6a7b8")))
	untrusted := startEnv(t, routes, withProxy("optional", "10.200.0.0/16"))
	untrustedRequired := startEnv(t, routes, withProxy("required", "10.200.0.0/16"))
	required := startEnv(t, routes, withProxy("required", "127.0.0.0/8"))
	for _, tc := range []struct {
		name   string
		e      *env
		prefix []byte
	}{
		{"a header from an untrusted source", untrusted, good},
		{"a header from an untrusted source, required mode", untrustedRequired, good},
		{"no header from an untrusted source, required mode", untrustedRequired, nil},
		{"required mode without a header", required, nil},
		{"a truncated v2 header", required, good[:20]},
		{"a v2 header whose length overruns", required, append(append([]byte{}, good[:14]...), 0xff, 0xff)},
		{"a garbled v1 header", required, []byte("PROXY TCP4 nonsense\r\n")},
		{"a v1 header without its line end", required, []byte("PROXY TCP4 192.0.2.44 10.0.0.1 50123 7687")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.e.count("bolt", "proxy_protocol_error")
			c, _, err := tc.e.dialVia("bolt", fqdn("public01"), tc.prefix)
			if err == nil {
				c.Close()
				t.Fatal("handshake succeeded, want the connection closed before TLS")
			}
			tc.e.waitCount("bolt", "proxy_protocol_error", before+1)
		})
	}
	// Untrusted sources without a header are ordinary public traffic in
	// optional mode; the servers are unharmed by what came before.
	c, r, err := untrusted.dialVia("bolt", fqdn("public01"), nil)
	if err != nil {
		t.Fatalf("public traffic from an untrusted source: %v", err)
	}
	r.ReadString('\n')
	c.Close()
	c, _, err = required.dialVia("bolt", fqdn("awsdb001"), good)
	if err != nil {
		t.Fatalf("a good header after the bad ones: %v", err)
	}
	c.Close()
}

func TestProxyLocalCommand(t *testing.T) {
	backend := ppBackend(t, "b")
	e := startEnv(t, fmt.Sprintf(privateRoutes, backend), withProxy("required", "127.0.0.0/8"))
	local := mustFormat(t, &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC})
	// The load balancer's health check: header, then close.
	raw, err := net.Dial("tcp", e.addr("bolt"))
	if err != nil {
		t.Fatal(err)
	}
	raw.Write(local)
	raw.Close()
	e.waitCount("bolt", "probe", 1)
	// A TCP health check (connect, close, no header at all) is no error either.
	raw, err = net.Dial("tcp", e.addr("bolt"))
	if err != nil {
		t.Fatal(err)
	}
	raw.Close()
	e.waitCount("bolt", "probe", 2)
	for _, entry := range e.logs.FilterMessage("connection").All() {
		if entry.Level > zapcore.DebugLevel {
			t.Errorf("a LOCAL health check was logged at %s: %v", entry.Level, entry.ContextMap())
		}
	}
	// A LOCAL connection that goes on to TLS is public traffic.
	c, _, err := e.dialVia("bolt", fqdn("public01"), local)
	if err != nil {
		t.Fatalf("TLS after a LOCAL header: %v", err)
	}
	c.Close()
}

func TestSlowProxyHeaderIsBoundedByTheHandshakeTimeout(t *testing.T) {
	e := startEnv(t, fmt.Sprintf(privateRoutes, closedAddr(t)), withProxy("required", "127.0.0.0/8"), func(c *envSetup) {
		c.Timeouts.Handshake = 300 * time.Millisecond
	})
	raw, err := net.Dial("tcp", e.addr("bolt"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte("\r\n\r\n")) // the start of a v2 signature, then nothing
	// Closed by the handshake timeout (300 ms), not left to go-proxyproto's
	// own 10 s default: the bound between the two leaves a busy machine
	// seconds of slack.
	raw.SetReadDeadline(time.Now().Add(8 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("the ingress did not close a stalled header within 8 s: %v", err)
	}
	e.waitCount("bolt", "proxy_protocol_error", 1)
}

func TestTurningPublicOffAppliesAtTheNextReload(t *testing.T) {
	backend := ppBackend(t, "b")
	routes := fmt.Sprintf(privateRoutes, backend)
	e := startEnv(t, routes, withProxy("optional", "127.0.0.0/8"), withAlerts)
	open, r, err := e.dialVia("bolt", fqdn("public01"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	r.ReadString('\n')

	table, err := routing.Parse("routes.yaml", []byte(strings.Replace(routes,
		"{dbid: public01, orch: \"0000\", public: true", "{dbid: public01, orch: \"0000\", public: false", 1)), ns, e.routes.Load())
	if err != nil {
		t.Fatal(err)
	}
	e.routes.Store(table)

	if c, _, err := e.dialVia("bolt", fqdn("public01"), nil); err == nil {
		c.Close()
		t.Fatal("public traffic still reaches the instance after public was turned off")
	}
	fmt.Fprintf(open, "still here\n")
	if line, err := r.ReadString('\n'); err != nil || line != "still here\n" {
		t.Fatalf("the open connection after the reload: %q, %v", line, err)
	}
}
