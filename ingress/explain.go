package ingress

import (
	"crypto/tls"
	"strings"

	"github.com/neo4j/private-ingress/internal/refusal"
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

// explain answers a refused client in its service's protocol and returns
// when the connection is done with; it dials nothing and stays within the
// handshake deadline, which the caller leaves in place.
func (l *listener) explain(tc *tls.Conn, c *conn) {
	dbid, orch, _ := routing.SplitName(c.sni, c.domain)
	dbid, orch = strings.ToLower(dbid), strings.ToLower(orch)
	reason := refusal.OtherOrch
	switch {
	case c.refusal == resultDenied && c.endpoint == "":
		reason = refusal.Public
	case c.refusal == resultDenied:
		reason = refusal.Endpoint
	case c.refusal == resultUnknownDBID:
		reason = refusal.UnknownDBID
	case c.refusal == resultPaused:
		reason = refusal.Paused
	case c.refusal == resultBackendUnavailable:
		reason = refusal.Unavailable
	}
	answer := refusal.For(reason, dbid, routing.ZoneName(orch, c.domain), c.endpoint)
	refusal.Serve(tc, l.svc == routing.Bolt, answer, l.explainHTTP)
}
