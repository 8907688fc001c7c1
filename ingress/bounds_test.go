package ingress_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zapcore"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/bolt"
	"github.com/neo4j/private-ingress/internal/refusal"
	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/routing"
)

// dialExplained connects to a refused name (an unknown dbid) with
// refusals explained, as dial's arguments say; the connection closes when
// the test ends.
func dialExplained(t *testing.T, service, name string, opts ...func(*tls.Config)) *tls.Conn {
	t.Helper()
	b := startBackend(t, "b")
	e := startEnv(t, explainRoutesFor(t, b.addr()))
	c, err := e.dial(service, name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// notTimeout fails t if err is a timeout: the ingress was to close the
// connection well before the test's failure bound.
func notTimeout(t *testing.T, what string, err error) {
	t.Helper()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: %v; want the ingress to have closed the connection", what, err)
	}
}

// TestExplainedH2StreamsAreBounded: an h2 client that opens stream after
// stream on an explained connection gets MaxAnswers answers, then GOAWAY,
// and the connection is closed.
func TestExplainedH2StreamsAreBounded(t *testing.T) {
	c := dialExplained(t, "https", fqdn("nosuchdb"), func(c *tls.Config) { c.NextProtos = []string{"h2"} })
	c.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	answers, goAway := 0, false
	var readErr error
	for i := 0; i < 20 && !goAway && readErr == nil; i++ {
		id := uint32(2*i + 1)
		block.Reset()
		for _, f := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
			{Name: ":authority", Value: fqdn("nosuchdb")}, {Name: ":path", Value: "/"}} {
			enc.WriteField(f)
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			break // closed under us
		}
		// Read until this stream is answered or reset, or the server is done.
	stream:
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				readErr = err
				break
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					fr.WriteSettingsAck()
				}
			case *http2.HeadersFrame:
				if f.StreamID == id {
					answers++
				}
				if f.StreamID == id && f.StreamEnded() {
					break stream
				}
			case *http2.DataFrame:
				if f.StreamID == id && f.StreamEnded() {
					break stream
				}
			case *http2.RSTStreamFrame:
				if f.StreamID == id {
					break stream
				}
			case *http2.GoAwayFrame:
				goAway = true
				if f.LastStreamID < id {
					break stream // this stream will never be answered
				}
			}
			if answers > refusal.MaxAnswers {
				t.Fatalf("%d streams answered on one explained connection, want at most %d", answers, refusal.MaxAnswers)
			}
		}
	}
	if answers != refusal.MaxAnswers {
		t.Errorf("%d streams answered, want %d", answers, refusal.MaxAnswers)
	}
	// The server closes the connection (GOAWAY first).
	for readErr == nil {
		var f http2.Frame
		if f, readErr = fr.ReadFrame(); readErr == nil {
			if _, ok := f.(*http2.GoAwayFrame); ok {
				goAway = true
			}
		}
	}
	notTimeout(t, "waiting for the close", readErr)
	if !goAway {
		t.Error("closed without a GOAWAY")
	}
}

// TestExplainedH2ReadsAreBounded: an h2 client that floods an explained
// connection (10 MB of PING frames) is cut once the ingress has read
// MaxRead bytes: it never acknowledges more PINGs than fit in them.
func TestExplainedH2ReadsAreBounded(t *testing.T) {
	c := dialExplained(t, "https", fqdn("nosuchdb"), func(c *tls.Config) { c.NextProtos = []string{"h2"} })
	c.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	const pingSize = 9 + 8
	var chunk bytes.Buffer
	pings := http2.NewFramer(&chunk, nil)
	for chunk.Len() < 1<<20 {
		pings.WritePing(false, [8]byte{1})
	}
	written := make(chan int64, 1)
	go func() {
		var n int64
		for n < 10<<20 {
			m, err := c.Write(chunk.Bytes())
			n += int64(m)
			if err != nil {
				break
			}
		}
		written <- n
	}()
	acks := 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			notTimeout(t, "reading the PING acknowledgements", err)
			break
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
			acks++
		}
	}
	if acks*pingSize > refusal.MaxRead {
		t.Errorf("%d PINGs acknowledged: the ingress read more than %d bytes", acks, refusal.MaxRead)
	}
	c.Close()
	t.Logf("%d PINGs acknowledged; the client wrote %d bytes", acks, <-written)
}

// TestExplainedBoltAnswersAreBounded: a Bolt client that pipelines 20 RUNs
// after HELLO gets MaxAnswers answers, then the connection ends.
func TestExplainedBoltAnswersAreBounded(t *testing.T) {
	c := dialExplained(t, "bolt", fqdn("nosuchdb"))
	msgs := []byte{0x60, 0x60, 0xB0, 0x17, 0, 0, 8, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	msgs = bolt.AppendMessage(msgs, bolt.MsgHello, map[string]any{"user_agent": "test/1"})
	for range 20 {
		msgs = bolt.AppendMessage(msgs, bolt.MsgRun, "RETURN 1", map[string]any{}, map[string]any{})
	}
	c.Write(msgs)
	r := bufio.NewReader(c)
	var version [4]byte
	if _, err := io.ReadFull(r, version[:]); err != nil {
		t.Fatal(err)
	}
	var tags []byte
	for {
		msg, err := bolt.ReadMessage(r)
		if err != nil {
			notTimeout(t, "reading the answers", err)
			break
		}
		if tags = append(tags, msg.Tag); len(tags) > refusal.MaxAnswers {
			t.Fatalf("answers %x: more than %d", tags, refusal.MaxAnswers)
		}
	}
	want := []byte{bolt.MsgSuccess, bolt.MsgFailure, bolt.MsgIgnored, bolt.MsgIgnored, bolt.MsgIgnored, bolt.MsgIgnored, bolt.MsgIgnored, bolt.MsgIgnored}
	if !bytes.Equal(tags, want) {
		t.Errorf("answers %x, want %x", tags, want)
	}
}

// TestExplainedHTTP1AnswersOnce: pipelined HTTP/1.1 requests get one
// answer, and the connection is closed.
func TestExplainedHTTP1AnswersOnce(t *testing.T) {
	c := dialExplained(t, "https", fqdn("nosuchdb"), func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	c.Write([]byte(strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 20)))
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("first answer: %v, %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp, err := http.ReadResponse(r, nil); err == nil {
		t.Fatalf("a second answer on the connection: %v", resp.Status)
	} else {
		notTimeout(t, "after the answer", err)
	}
}

// TestProbes: a bare connect or a load balancer's health check is a probe,
// logged at debug; a client that sent bytes and failed, or that stayed
// silent until the handshake timeout, is a handshake error.
func TestProbes(t *testing.T) {
	a := startBackend(t, "a")
	connect := func(e *env, prefix []byte, reset bool) {
		t.Helper()
		c, err := net.Dial("tcp", e.addr("bolt"))
		if err != nil {
			t.Fatal(err)
		}
		c.Write(prefix)
		if reset {
			c.(*net.TCPConn).SetLinger(0) // close with RST, as some health checkers do
		}
		c.Close()
	}
	local := mustFormat(t, &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC})
	garbage := []byte("\x16\x03\x01\x00\x05hello") // a handshake record whose message is garbage
	partial := []byte("\x16\x03\x01\x02\x00\x01")  // half a record, then the close
	for _, tc := range []struct {
		name  string
		opts  []envOption
		steps []struct {
			prefix []byte
			reset  bool
			result string
		}
	}{
		{"no PROXY protocol", nil, []struct {
			prefix []byte
			reset  bool
			result string
		}{
			{nil, false, "probe"},
			{nil, true, "probe"},
			{garbage, false, "handshake_error"},
			{partial, false, "handshake_error"},
			{[]byte("GET / HTTP/1.1\r\n\r\n"), false, "handshake_error"},
		}},
		{"PROXY protocol required", []envOption{withProxy("required", "127.0.0.0/8")}, []struct {
			prefix []byte
			reset  bool
			result string
		}{
			{nil, false, "probe"},
			{local, false, "probe"},
			{local, true, "probe"},
			{mustFormat(t, header(t)), false, "probe"},
			{append(append([]byte{}, local...), garbage...), false, "handshake_error"},
			{append(mustFormat(t, header(t)), partial...), false, "handshake_error"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, twoInstances(a, a), tc.opts...)
			want := map[string]float64{}
			for i, s := range tc.steps {
				connect(e, s.prefix, s.reset)
				want[s.result]++
				e.waitCount("bolt", "probe", want["probe"])
				e.waitCount("bolt", "handshake_error", want["handshake_error"])
				if t.Failed() {
					t.Fatalf("step %d (%q)", i, s.prefix)
				}
			}
			for _, entry := range e.logs.FilterMessage("connection").All() {
				m := entry.ContextMap()
				if (m["result"] == "probe") != (entry.Level == zapcore.DebugLevel) {
					t.Errorf("%s line at %s: %v", m["result"], entry.Level, m)
				}
			}
		})
	}

	// A silent client that holds its place until the handshake timeout is
	// an error, before or after the PROXY header.
	t.Run("silent until the timeout", func(t *testing.T) {
		short := func(s *envSetup) { s.Timeouts.Handshake = 200 * time.Millisecond }
		for _, e := range []*env{
			startEnv(t, twoInstances(a, a), short),
			startEnv(t, twoInstances(a, a), short, withProxy("required", "127.0.0.0/8")),
		} {
			c := e.hold("bolt", nil)
			c.SetReadDeadline(time.Now().Add(testenv.WaitTimeout))
			_, err := c.Read(make([]byte, 1))
			notTimeout(t, "silent client", err)
			e.waitCount("bolt", "handshake_error", 1)
			if n := e.count("bolt", "probe"); n != 0 {
				t.Errorf("probe = %v, want 0", n)
			}
		}
	})
}

// TestMetricsFromTheStart: every result of every service is on /metrics
// at zero before any connection, and the metrics pass promlint.
func TestMetricsFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	ingress.NewMetrics(reg)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "ingress_connections_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			seen[labels["service"]+"/"+labels["result"]] = true
		}
	}
	for _, svc := range routing.ServiceNames() {
		for _, r := range []string{"ok", "no_sni", "unknown_host", "unknown_dbid", "denied", "handshake_error",
			"backend_unavailable", "proxy_protocol_error", "limit", "probe"} {
			if !seen[svc+"/"+r] {
				t.Errorf("ingress_connections_total{service=%q,result=%q} is not there from the start", svc, r)
			}
		}
	}
}
