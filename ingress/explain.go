package ingress

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"

	"github.com/neo4j/private-ingress/internal/bolt"
	"github.com/neo4j/private-ingress/routing"
)

// Refusal modes: how a connection to a name under a served zone that will
// not be routed (unknown dbid, denied access, an orch not served here) ends.
const (
	// RefusalsExplain completes the handshake and answers in the service's
	// protocol with the reason: an HTTP status and JSON body, a Bolt
	// FAILURE, a gRPC status. It is the default.
	RefusalsExplain = "explain"
	// RefusalsAlert ends the handshake with an unrecognized_name alert.
	RefusalsAlert = "alert"
)

// explanation is what a refused client is told. It names nothing the
// client did not send: its own dbid, orch and endpoint id, never a backend
// address, another endpoint or another database.
type explanation struct {
	httpStatus int
	grpcCode   int    // a google.golang.org/grpc/codes value
	boltCode   string // a Neo4j status code the drivers raise as such
	body       refusalBody
}

// refusalBody is the JSON an HTTP client gets.
type refusalBody struct {
	Error string `json:"error"`
	DBID  string `json:"dbid"`
	Hint  string `json:"hint"`
}

// gRPC status codes (google.golang.org/grpc/codes), not imported for two numbers.
const (
	grpcNotFound         = 5
	grpcPermissionDenied = 7
)

func (e explanation) message() string { return e.body.Error + "; " + e.body.Hint }

// explanationFor says why c was refused, for the client.
func explanationFor(c *clientConn) explanation {
	dbid, orch, _ := routing.SplitName(c.sni, c.domain)
	dbid, orch = strings.ToLower(dbid), strings.ToLower(orch)
	zone := routing.ZoneName(orch, c.domain)
	switch {
	case c.refusal == resultDenied && c.endpoint == "":
		return explanation{http.StatusForbidden, grpcPermissionDenied, "Neo.ClientError.Security.Forbidden", refusalBody{
			Error: "public traffic is disabled for this instance",
			DBID:  dbid,
			Hint:  "connect through its private endpoint",
		}}
	case c.refusal == resultDenied:
		return explanation{http.StatusForbidden, grpcPermissionDenied, "Neo.ClientError.Security.Forbidden", refusalBody{
			Error: "this instance is not reachable through private endpoint " + c.endpoint,
			DBID:  dbid,
			Hint:  "allow this endpoint for the instance, or connect through one that is allowed",
		}}
	case c.refusal == resultUnknownDBID:
		return explanation{http.StatusNotFound, grpcNotFound, "Neo.ClientError.Database.DatabaseNotFound", refusalBody{
			Error: "database " + dbid + " not found in " + zone,
			DBID:  dbid,
			Hint:  "check the database id in the connection URI",
		}}
	default: // an orch this ingress does not serve
		return explanation{http.StatusMisdirectedRequest, grpcNotFound, "Neo.ClientError.Database.DatabaseNotFound", refusalBody{
			Error: zone + " is not served through this endpoint",
			DBID:  dbid,
			Hint:  "check the orchestra in the connection URI, and that its private endpoint is the one in use",
		}}
	}
}

// maxExplainRead bounds what a refused client may make us read.
const maxExplainRead = 64 << 10

// explainIdle closes an HTTP/2 connection once its answer is out.
const explainIdle = time.Second

// explain answers a refused client in its service's protocol and returns
// when the connection is done with; it dials nothing and stays within the
// handshake deadline, which the caller leaves in place.
func (l *listener) explain(tc *tls.Conn, c *clientConn) {
	e := explanationFor(c)
	r := bufio.NewReaderSize(io.LimitReader(tc, maxExplainRead), 4096)
	switch {
	case tc.ConnectionState().NegotiatedProtocol == "h2":
		srv := &http2.Server{IdleTimeout: explainIdle, MaxConcurrentStreams: 4}
		srv.ServeConn(tc, &http2.ServeConnOpts{Handler: refusalHandler(e), BaseConfig: l.explainHTTP})
		return
	case l.svc == routing.Bolt:
		explainBolt(r, tc, e)
	default:
		explainHTTP1(r, tc, e)
	}
	lingerClose(r, tc, c)
}

// refusalHandler answers every request on an HTTP/2 connection: gRPC
// clients with a trailers-only gRPC status, everyone else with JSON.
func refusalHandler(e explanation) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", strconv.Itoa(e.grpcCode))
			w.Header().Set("Grpc-Message", grpcPercentEncode(e.message()))
			w.WriteHeader(http.StatusOK)
			return
		}
		body := e.jsonBody()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(e.httpStatus)
		w.Write(body)
	})
}

func (e explanation) jsonBody() []byte {
	b, _ := json.Marshal(e.body) // three strings: cannot fail
	return append(b, '\n')
}

// explainHTTP1 reads one request and answers it, closing the connection.
func explainHTTP1(r *bufio.Reader, w io.Writer, e explanation) {
	req, err := http.ReadRequest(r)
	if err != nil {
		return // not HTTP: there is no one to explain to
	}
	body := e.jsonBody()
	resp := &http.Response{
		StatusCode:    e.httpStatus,
		ProtoMajor:    1,
		ProtoMinor:    1,
		Request:       req,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Close:         true,
	}
	resp.Write(w)
}

// explainVersions are the Bolt versions whose FAILURE we can send: the
// message has not changed since 3.0, only where drivers read the code.
func explainVersions(v bolt.Version) bool {
	return v.Major == 5 && v.Minor <= 8 || v.Major == 4 && v.Minor <= 4 || v == bolt.Version{Major: 3}
}

// explainBolt negotiates a version, lets HELLO and LOGON succeed and
// answers the first request (ROUTE, BEGIN, RUN...) with a FAILURE, which is
// where a Neo4j server reports an unknown database too. A FAILURE on HELLO
// itself would be simpler, but drivers take it for a broken connection: the
// JavaScript driver turns it into a ProtocolError and retries discovery for
// half a minute, never showing the code. After the failure, requests are
// IGNORED until RESET, as a server does, until the driver says GOODBYE or
// goes. Nothing is authenticated, since nothing can be reached.
func explainBolt(r *bufio.Reader, w io.Writer, e explanation) {
	if _, err := bolt.Negotiate(r, w, explainVersions); err != nil {
		return
	}
	var out []byte
	failed := false
	for {
		msg, err := bolt.ReadMessage(r)
		if err != nil || msg.Tag == bolt.MsgGoodbye {
			w.Write(out)
			return
		}
		switch {
		case msg.Tag == bolt.MsgHello:
			out = bolt.AppendMessage(out, bolt.MsgSuccess, map[string]any{
				"server": "Neo4j/5 (private ingress)", "connection_id": "bolt-refused", "hints": map[string]any{},
			})
		case msg.Tag == bolt.MsgLogon, msg.Tag == bolt.MsgLogoff:
			out = bolt.AppendMessage(out, bolt.MsgSuccess, map[string]any{})
		case msg.Tag == bolt.MsgReset:
			failed = false
			out = bolt.AppendMessage(out, bolt.MsgSuccess, map[string]any{})
		case failed:
			out = bolt.AppendMessage(out, bolt.MsgIgnored)
		default:
			failed = true
			out = bolt.AppendMessage(out, bolt.MsgFailure, bolt.Failure(e.boltCode, e.message()))
		}
		// Answer a pipelined batch in one write.
		if r.Buffered() == 0 {
			if _, err := w.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
	}
}

// lingerClose half-closes (close_notify, then FIN) and reads what the
// client still sends until it closes too, so that closing with unread
// bytes does not reset the connection and destroy the answer in flight.
func lingerClose(r *bufio.Reader, tc *tls.Conn, c *clientConn) {
	tc.CloseWrite()
	c.CloseWrite()
	io.Copy(io.Discard, r)
}

// grpcPercentEncode encodes a grpc-message value: printable ASCII but '%'
// as is, everything else as %XX (the gRPC HTTP/2 spec).
func grpcPercentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x20 && c <= 0x7E && c != '%' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
