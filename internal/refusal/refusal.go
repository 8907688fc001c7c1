// Package refusal answers a client the ingress will not route, in the
// client's own protocol, once its TLS handshake is complete: an HTTP
// status with a JSON body (HTTP/1.1 and h2), a gRPC status, or a Bolt
// FAILURE the drivers raise as such. It says why in words a user can act
// on, names nothing the client did not send, dials nothing, and bounds
// what the client can make it read.
package refusal

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
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/neo4j/private-ingress/internal/bolt"
)

// Reason is why a connection is refused.
type Reason uint8

// The reasons a client is told about.
const (
	UnknownDBID Reason = iota + 1 // no such database in the zone
	Public                        // public traffic, and the instance is not public
	Endpoint                      // a private endpoint the instance does not allow
	OtherOrch                     // a zone this ingress does not serve
	Unavailable                   // routed, but none of its backends answered
	Paused                        // its owner paused it: nothing runs to answer
)

// Answer is what a refused client is told, in each protocol.
type Answer struct {
	HTTPStatus int
	GRPCCode   int    // a google.golang.org/grpc/codes value
	BoltCode   string // a Neo4j status code the drivers raise as such
	Body       Body
}

// Body is the JSON an HTTP client gets.
type Body struct {
	Error string `json:"error"`
	DBID  string `json:"dbid"`
	Hint  string `json:"hint"`
}

// gRPC status codes (google.golang.org/grpc/codes), not imported for four numbers.
const (
	grpcNotFound           = 5
	grpcPermissionDenied   = 7
	grpcFailedPrecondition = 9
	grpcUnavailable        = 14
)

// Bolt codes. A paused database is no transient state a retry would see
// end: the code must be one the drivers neither retry nor, when it answers
// ROUTE, take for a router to try again (the Go and JavaScript drivers
// fail discovery at once on Request.Invalid, as on DatabaseNotFound and
// the Security codes), so that the user reads "paused" within seconds and
// not after a 30 s retry budget. DatabaseUnavailable is the one the
// drivers do retry: an unreachable instance is usually restarting.
const (
	boltForbidden   = "Neo.ClientError.Security.Forbidden"
	boltNotFound    = "Neo.ClientError.Database.DatabaseNotFound"
	boltPaused      = "Neo.ClientError.Request.Invalid"
	boltUnavailable = "Neo.TransientError.General.DatabaseUnavailable"
)

// For builds the answer for reason: dbid and zone are what the client
// asked for (lower case), endpoint the private endpoint it came through.
func For(reason Reason, dbid, zone, endpoint string) Answer {
	switch reason {
	case Unavailable:
		return Answer{http.StatusServiceUnavailable, grpcUnavailable, boltUnavailable, Body{
			Error: "database " + dbid + " is unavailable: it is not answering",
			DBID:  dbid,
			Hint:  "it may be restarting; retry in a few seconds, and check its status in the console if this persists",
		}}
	case Paused:
		return Answer{http.StatusServiceUnavailable, grpcFailedPrecondition, boltPaused, Body{
			Error: "database " + dbid + " is paused",
			DBID:  dbid,
			Hint:  "resume it in the console; connections work again once it is running",
		}}
	case Public:
		return Answer{http.StatusForbidden, grpcPermissionDenied, boltForbidden, Body{
			Error: "public traffic is disabled for this instance",
			DBID:  dbid,
			Hint:  "connect through its private endpoint",
		}}
	case Endpoint:
		return Answer{http.StatusForbidden, grpcPermissionDenied, boltForbidden, Body{
			Error: "this instance is not reachable through private endpoint " + endpoint,
			DBID:  dbid,
			Hint:  "allow this endpoint for the instance, or connect through one that is allowed",
		}}
	case UnknownDBID:
		return Answer{http.StatusNotFound, grpcNotFound, boltNotFound, Body{
			Error: "database " + dbid + " not found in " + zone,
			DBID:  dbid,
			Hint:  "check the database id in the connection URI",
		}}
	default:
		return Answer{http.StatusMisdirectedRequest, grpcNotFound, boltNotFound, Body{
			Error: zone + " is not served through this endpoint",
			DBID:  dbid,
			Hint:  "check the orchestra in the connection URI, and that its private endpoint is the one in use",
		}}
	}
}

// Message is the answer in one line: the error and the hint.
func (a Answer) Message() string { return a.Body.Error + "; " + a.Body.Hint }

func (a Answer) jsonBody() []byte {
	b, _ := json.Marshal(a.Body) // three strings: cannot fail
	return append(b, '\n')
}

// MaxRead bounds what a refused client may make the ingress read, in
// every protocol: past it the connection is closed.
const MaxRead = 64 << 10

// MaxAnswers bounds the requests (HTTP/1), streams (h2, gRPC) or messages
// after the negotiation (Bolt) answered on one connection before it is
// closed: an h2 client would otherwise open streams without end.
const MaxAnswers = 8

// h2Idle closes an HTTP/2 connection once its answer is out.
const h2Idle = time.Second

// Serve answers a refused client on tc, whose handshake is complete, and
// returns when the connection is done with: h2 if that was negotiated,
// else Bolt when bolt is set, else HTTP/1.1. base carries the HTTP/2
// server's settings (its error log). The caller's deadline on tc stays in
// force and bounds the whole answer.
func Serve(tc *tls.Conn, bolt bool, a Answer, base *http.Server) {
	r := bufio.NewReaderSize(io.LimitReader(tc, MaxRead), 4096)
	switch {
	case tc.ConnectionState().NegotiatedProtocol == "h2":
		srv := &http2.Server{IdleTimeout: h2Idle, MaxConcurrentStreams: 4}
		srv.ServeConn(&limitedConn{Conn: tc, left: MaxRead}, &http2.ServeConnOpts{Handler: counted(Handler(a)), BaseConfig: base})
		return
	case bolt:
		serveBolt(r, tc, a)
	default:
		serveHTTP1(r, tc, a)
	}
	lingerClose(r, tc)
}

// Handler answers every request on an HTTP/2 connection: gRPC clients with
// a trailers-only gRPC status, everyone else with JSON.
func Handler(a Answer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", strconv.Itoa(a.GRPCCode))
			w.Header().Set("Grpc-Message", grpcPercentEncode(a.Message()))
			w.WriteHeader(http.StatusOK)
			return
		}
		body := a.jsonBody()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(a.HTTPStatus)
		w.Write(body)
	})
}

// counted answers MaxAnswers streams of one HTTP/2 connection: the last
// of them with "Connection: close", which makes the HTTP/2 server send
// GOAWAY and close the connection once its streams are done; streams
// already started beyond it (up to MaxConcurrentStreams) are reset.
func counted(h http.Handler) http.Handler {
	var n atomic.Int32
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n := n.Add(1); {
		case n > MaxAnswers:
			panic(http.ErrAbortHandler) // RST_STREAM, not logged
		case n == MaxAnswers:
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// limitedConn is the HTTP/2 server's connection: after left bytes its
// reads end, and the server closes the connection.
type limitedConn struct {
	*tls.Conn // also the ConnectionState the HTTP/2 server asks for
	left      int64
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}

// serveHTTP1 reads one request and answers it, closing the connection.
func serveHTTP1(r *bufio.Reader, w io.Writer, a Answer) {
	req, err := http.ReadRequest(r)
	if err != nil {
		return // not HTTP: there is no one to explain to
	}
	body := a.jsonBody()
	resp := &http.Response{
		StatusCode:    a.HTTPStatus,
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

// boltVersions are the Bolt versions whose FAILURE we can send: the
// message has not changed since 3.0, only where drivers read the code.
func boltVersions(v bolt.Version) bool {
	return v.Major == 5 && v.Minor <= 8 || v.Major == 4 && v.Minor <= 4 || v == bolt.Version{Major: 3}
}

// serveBolt negotiates a version, lets HELLO and LOGON succeed and answers
// the first request (ROUTE, BEGIN, RUN...) with a FAILURE, which is where a
// Neo4j server reports an unknown database too. A FAILURE on HELLO itself
// would be simpler, but drivers take it for a broken connection: the
// JavaScript driver turns it into a ProtocolError and retries discovery
// for half a minute, never showing the code. After the failure, requests
// are IGNORED until RESET, as a server does, until the driver says GOODBYE
// or goes, or MaxAnswers messages were answered. Nothing is
// authenticated, since nothing can be reached.
func serveBolt(r *bufio.Reader, w io.Writer, a Answer) {
	if _, err := bolt.Negotiate(r, w, boltVersions); err != nil {
		return
	}
	var out []byte
	failed := false
	for answered := 0; ; answered++ {
		if answered == MaxAnswers {
			w.Write(out)
			return
		}
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
			out = bolt.AppendMessage(out, bolt.MsgFailure, bolt.Failure(a.BoltCode, a.Message()))
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
func lingerClose(r *bufio.Reader, tc *tls.Conn) {
	tc.CloseWrite()
	if cw, ok := tc.NetConn().(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
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
