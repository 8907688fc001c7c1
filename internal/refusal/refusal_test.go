package refusal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFor(t *testing.T) {
	for _, tc := range []struct {
		reason     Reason
		status     int
		grpc       int
		boltCode   string
		errorSays  string
		nameNoMore string // never in the answer: what the client did not send
	}{
		{UnknownDBID, 404, grpcNotFound, "Neo.ClientError.Database.DatabaseNotFound", "database abcd1234 not found in production-orch-0000.neo4j.io", ""},
		{Public, 403, grpcPermissionDenied, "Neo.ClientError.Security.Forbidden", "public traffic is disabled", "vpce-"},
		{Endpoint, 403, grpcPermissionDenied, "Neo.ClientError.Security.Forbidden", "private endpoint vpce-1", ""},
		{OtherOrch, 421, grpcNotFound, "Neo.ClientError.Database.DatabaseNotFound", "production-orch-0000.neo4j.io is not served", ""},
	} {
		endpoint := "vpce-1"
		if tc.reason == Public {
			endpoint = ""
		}
		a := For(tc.reason, "abcd1234", "production-orch-0000.neo4j.io", endpoint)
		if a.HTTPStatus != tc.status || a.GRPCCode != tc.grpc || a.BoltCode != tc.boltCode ||
			!strings.Contains(a.Body.Error, tc.errorSays) || a.Body.DBID != "abcd1234" || a.Body.Hint == "" {
			t.Errorf("For(%d) = %+v", tc.reason, a)
		}
		if tc.nameNoMore != "" && strings.Contains(a.Message(), tc.nameNoMore) {
			t.Errorf("For(%d) says %q, which the client did not send", tc.reason, tc.nameNoMore)
		}
	}
}

func TestHandler(t *testing.T) {
	a := For(UnknownDBID, "abcd1234", "production-orch-0000.neo4j.io", "")
	t.Run("json", func(t *testing.T) {
		w := httptest.NewRecorder()
		Handler(a).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		var body Body
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 404 || body != a.Body {
			t.Errorf("status %d, body %s (%v)", w.Code, w.Body, err)
		}
	})
	t.Run("grpc", func(t *testing.T) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/arrow.flight.protocol.FlightService/ListFlights", nil)
		r.Header.Set("Content-Type", "application/grpc+proto")
		Handler(a).ServeHTTP(w, r)
		if w.Code != 200 || w.Header().Get("Grpc-Status") != "5" || !strings.HasPrefix(w.Header().Get("Grpc-Message"), "database abcd1234 not found") {
			t.Errorf("status %d, headers %v", w.Code, w.Header())
		}
	})
}

func TestServeHTTP1(t *testing.T) {
	a := For(Public, "abcd1234", "production-orch-0000.neo4j.io", "")
	var out bytes.Buffer
	serveHTTP1(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), &out, a)
	resp, err := http.ReadResponse(bufio.NewReader(&out), nil)
	if err != nil || resp.StatusCode != 403 || !resp.Close {
		t.Fatalf("response %+v, %v", resp, err)
	}
	out.Reset()
	serveHTTP1(bufio.NewReader(strings.NewReader("\x16\x03\x01 not http")), &out, a)
	if out.Len() != 0 {
		t.Errorf("answered %q to bytes that are not HTTP", out.String())
	}
}

func TestGRPCPercentEncode(t *testing.T) {
	for in, want := range map[string]string{
		"plain text; ok": "plain text; ok",
		"100%":           "100%25",
		"é\n":            "%C3%A9%0A",
	} {
		if got := grpcPercentEncode(in); got != want {
			t.Errorf("grpcPercentEncode(%q) = %q, want %q", in, got, want)
		}
	}
}
