package refusal

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/neo4j/private-ingress/internal/bolt"
)

// TestServeBoltAnswersAtMostMaxAnswers: 20 pipelined RUNs after HELLO get
// MaxAnswers answers, then serveBolt returns (and the caller closes).
func TestServeBoltAnswersAtMostMaxAnswers(t *testing.T) {
	in := []byte{0x60, 0x60, 0xB0, 0x17, 0, 0, 8, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	in = bolt.AppendMessage(in, bolt.MsgHello, map[string]any{"user_agent": "test/1"})
	for range 20 {
		in = bolt.AppendMessage(in, bolt.MsgRun, "RETURN 1", map[string]any{}, map[string]any{})
	}
	var out bytes.Buffer
	serveBolt(bufio.NewReader(bytes.NewReader(in)), &out, For(UnknownDBID, "abcd1234", "production-orch-0000.neo4j.io", ""))
	r := bufio.NewReader(&out)
	if _, err := io.ReadFull(r, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	var tags []byte
	for {
		msg, err := bolt.ReadMessage(r)
		if err != nil {
			break
		}
		tags = append(tags, msg.Tag)
	}
	if len(tags) != MaxAnswers || tags[0] != bolt.MsgSuccess || tags[1] != bolt.MsgFailure || tags[MaxAnswers-1] != bolt.MsgIgnored {
		t.Errorf("answers %x, want SUCCESS, FAILURE, then IGNORED up to %d", tags, MaxAnswers)
	}
}

// TestCountedHandler: the MaxAnswers-th stream asks for the connection's
// close (GOAWAY on HTTP/2); later ones are reset unanswered.
func TestCountedHandler(t *testing.T) {
	h := counted(Handler(For(Public, "abcd1234", "production-orch-0000.neo4j.io", "")))
	for i := 1; i <= MaxAnswers+2; i++ {
		w := httptest.NewRecorder()
		aborted := func() (aborted bool) {
			defer func() {
				if p := recover(); p != nil {
					if p != http.ErrAbortHandler {
						panic(p)
					}
					aborted = true
				}
			}()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			return false
		}()
		switch {
		case i > MaxAnswers && !aborted:
			t.Errorf("stream %d answered %d, want it reset", i, w.Code)
		case i <= MaxAnswers && (aborted || w.Code != http.StatusForbidden):
			t.Errorf("stream %d: aborted %v, status %d", i, aborted, w.Code)
		case i < MaxAnswers && w.Header().Get("Connection") != "":
			t.Errorf("stream %d: Connection %q, want none", i, w.Header().Get("Connection"))
		case i == MaxAnswers && w.Header().Get("Connection") != "close":
			t.Errorf("stream %d: Connection %q, want close", i, w.Header().Get("Connection"))
		}
	}
}
