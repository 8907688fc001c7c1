package demo

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/neo4j/private-ingress/internal/bolt"
)

// BoltServer is a fake Neo4j instance that speaks enough Bolt for the
// official drivers: the handshake, HELLO/LOGON, ROUTE, transactions, and a
// sliver of Cypher — RETURN of literals, $parameters and instance(), the
// function that says which instance answered.
type BoltServer struct {
	dbid string
	// advertised is the host:port the routing table names. Aura names the
	// instance's own FQDN on 7687, so that drivers come back through the
	// ingress; the demo sets the ingress's bolt port.
	advertised atomic.Pointer[string]
	ids        atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{} // open connections, closed when Serve ends
	wg    sync.WaitGroup
}

// NewBolt returns a fake instance for dbid, advertising its FQDN on 7687.
func NewBolt(dbid string) *BoltServer {
	b := &BoltServer{dbid: dbid}
	b.Advertise("7687")
	return b
}

// FQDN is the instance's host name.
func FQDN(dbid string) string { return dbid + ".production-orch-" + Orch + ".neo4j.io" }

// Advertise sets the port the routing table names with the instance's FQDN.
func (b *BoltServer) Advertise(port string) {
	addr := net.JoinHostPort(FQDN(b.dbid), port)
	b.advertised.Store(&addr)
}

// Serve answers Bolt connections on ln until it closes, then closes the
// connections still open (drivers keep theirs in a pool) and waits for them.
func (b *BoltServer) Serve(ln net.Listener) error {
	defer b.closeAll()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		b.mu.Lock()
		if b.conns == nil {
			b.conns = make(map[net.Conn]struct{})
		}
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Go(func() {
			b.serveConn(c)
			b.mu.Lock()
			delete(b.conns, c)
			b.mu.Unlock()
			c.Close()
		})
	}
}

func (b *BoltServer) closeAll() {
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// speaks reports the versions the fake implements: 5.0–5.8 and 4.4.
func speaks(v bolt.Version) bool {
	return v.Major == 5 && v.Minor <= 8 || v.Major == 4 && v.Minor == 4
}

// session is one Bolt connection's state.
type session struct {
	srv     *BoltServer
	version bolt.Version
	id      int64
	failed  bool  // after a FAILURE, everything is IGNORED until RESET
	inTx    bool  // between BEGIN and COMMIT/ROLLBACK
	write   bool  // the transaction or the last query wrote
	result  []any // the row a RUN produced, waiting for PULL or DISCARD
	fields  []string
	out     []byte
}

func (b *BoltServer) serveConn(c net.Conn) {
	r := bufio.NewReader(c)
	v, err := bolt.Negotiate(r, c, speaks)
	if err != nil {
		return
	}
	s := &session{srv: b, version: v, id: b.ids.Add(1)}
	for {
		msg, err := bolt.ReadMessage(r)
		if err != nil {
			return
		}
		if msg.Tag == bolt.MsgGoodbye {
			return
		}
		s.handle(msg)
		// Answer a pipelined batch in one write.
		if r.Buffered() == 0 {
			if _, err := c.Write(s.out); err != nil {
				return
			}
			s.out = s.out[:0]
		}
	}
}

func (s *session) reply(tag byte, fields ...any) {
	s.out = bolt.AppendMessage(s.out, tag, fields...)
}

func (s *session) success(meta map[string]any) { s.reply(bolt.MsgSuccess, meta) }

func (s *session) fail(code, message string) {
	s.failed, s.result, s.inTx = true, nil, false
	s.reply(bolt.MsgFailure, bolt.Failure(code, message))
}

func (s *session) handle(msg bolt.Struct) {
	if s.failed && msg.Tag != bolt.MsgReset {
		s.reply(bolt.MsgIgnored)
		return
	}
	switch msg.Tag {
	case bolt.MsgHello:
		s.success(map[string]any{
			"server":        "Neo4j/5.26.0",
			"connection_id": "bolt-" + strconv.FormatInt(s.id, 10),
			"hints":         map[string]any{},
		})
	case bolt.MsgLogon, bolt.MsgLogoff, bolt.MsgTelemetry:
		s.success(map[string]any{})
	case bolt.MsgReset:
		s.failed, s.inTx, s.result = false, false, nil
		s.success(map[string]any{})
	case bolt.MsgRoute:
		s.success(map[string]any{"rt": s.routingTable(msg)})
	case bolt.MsgBegin:
		s.inTx, s.write = true, false
		s.success(map[string]any{})
	case bolt.MsgRun:
		s.run(msg)
	case bolt.MsgPull, bolt.MsgDiscard:
		if s.fields == nil {
			s.fail("Neo.ClientError.Request.Invalid", "nothing to "+strings.ToLower(msgName(msg.Tag)))
			return
		}
		if msg.Tag == bolt.MsgPull && s.result != nil {
			s.reply(bolt.MsgRecord, s.result)
		}
		meta := map[string]any{"has_more": false, "db": "neo4j", "t_last": int64(0), "type": "r"}
		if s.write {
			meta["type"] = "w"
		}
		if !s.inTx {
			meta["bookmark"] = s.bookmark()
		}
		s.fields, s.result = nil, nil
		s.success(meta)
	case bolt.MsgCommit:
		s.inTx = false
		s.success(map[string]any{"bookmark": s.bookmark()})
	case bolt.MsgRollback:
		s.inTx = false
		s.success(map[string]any{})
	default:
		s.fail("Neo.ClientError.Request.Invalid", fmt.Sprintf("message 0x%02X is not supported by the demo instance", msg.Tag))
	}
}

func (s *session) bookmark() string { return "FB:demo-" + s.srv.dbid }

func msgName(tag byte) string {
	if tag == bolt.MsgPull {
		return "PULL"
	}
	return "DISCARD"
}

// routingTable names the instance's own FQDN in every role: one address,
// the one the drivers already dialled, through the ingress.
func (s *session) routingTable(msg bolt.Struct) map[string]any {
	db := "neo4j"
	if len(msg.Fields) == 3 {
		if extra, ok := msg.Fields[2].(map[string]any); ok {
			if name, ok := extra["db"].(string); ok && name != "" {
				db = name
			}
		}
	}
	addr := []any{*s.srv.advertised.Load()}
	return map[string]any{
		"ttl": int64(300),
		"db":  db,
		"servers": []any{
			map[string]any{"role": "WRITE", "addresses": addr},
			map[string]any{"role": "READ", "addresses": addr},
			map[string]any{"role": "ROUTE", "addresses": addr},
		},
	}
}

func (s *session) run(msg bolt.Struct) {
	if len(msg.Fields) < 2 {
		s.fail("Neo.ClientError.Request.Invalid", "RUN needs a query and parameters")
		return
	}
	query, _ := msg.Fields[0].(string)
	params, _ := msg.Fields[1].(map[string]any)
	fields, row, err := evalQuery(query, params, s.srv.dbid)
	if err != nil {
		s.fail(err.code, err.msg)
		return
	}
	s.fields, s.result = fields, row
	s.write = s.write || isWrite(query)
	meta := map[string]any{"fields": fields, "t_first": int64(0)}
	if s.inTx {
		meta["qid"] = int64(0)
	}
	s.success(meta)
}

// queryError is a Cypher error with its Neo4j status code.
type queryError struct{ code, msg string }

// evalQuery answers the demo's Cypher: whatever precedes the last RETURN is
// taken as done, and each returned item is a literal, a $parameter or
// instance(), with an optional AS alias.
func evalQuery(query string, params map[string]any, dbid string) ([]string, []any, *queryError) {
	i := strings.LastIndex(strings.ToUpper(query), "RETURN ")
	if i < 0 {
		return nil, nil, &queryError{"Neo.ClientError.Statement.SyntaxError",
			"the demo instance only answers RETURN queries (literals, $parameters, instance())"}
	}
	var fields []string
	var row []any
	for _, item := range splitItems(query[i+len("RETURN "):]) {
		expr, alias := item, item
		if j := strings.LastIndex(strings.ToUpper(item), " AS "); j >= 0 {
			expr, alias = strings.TrimSpace(item[:j]), strings.TrimSpace(item[j+4:])
		}
		v, err := evalExpr(expr, params, dbid)
		if err != nil {
			return nil, nil, err
		}
		fields, row = append(fields, alias), append(row, v)
	}
	if len(fields) == 0 {
		return nil, nil, &queryError{"Neo.ClientError.Statement.SyntaxError", "RETURN needs at least one item"}
	}
	return fields, row, nil
}

// splitItems splits at the commas that are outside quotes and parentheses.
func splitItems(s string) []string {
	var items []string
	depth, quote, start := 0, byte(0), 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			items = append(items, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if last := strings.TrimSpace(s[start:]); last != "" {
		items = append(items, last)
	}
	return items
}

func evalExpr(expr string, params map[string]any, dbid string) (any, *queryError) {
	switch {
	case strings.EqualFold(expr, "instance()"):
		return dbid, nil
	case strings.HasPrefix(expr, "$"):
		v, ok := params[expr[1:]]
		if !ok {
			return nil, &queryError{"Neo.ClientError.Statement.ParameterMissing", "expected parameter(s): " + expr[1:]}
		}
		return v, nil
	case len(expr) >= 2 && (expr[0] == '\'' || expr[0] == '"') && expr[len(expr)-1] == expr[0]:
		return expr[1 : len(expr)-1], nil
	case strings.EqualFold(expr, "null"):
		return nil, nil
	case strings.EqualFold(expr, "true"), strings.EqualFold(expr, "false"):
		return strings.EqualFold(expr, "true"), nil
	}
	if n, err := strconv.ParseInt(expr, 10, 64); err == nil {
		return n, nil
	}
	if f, err := strconv.ParseFloat(expr, 64); err == nil {
		return f, nil
	}
	return nil, &queryError{"Neo.ClientError.Statement.SyntaxError",
		fmt.Sprintf("the demo instance cannot evaluate %q: it knows literals, $parameters and instance()", expr)}
}

func isWrite(query string) bool {
	q := strings.ToUpper(query)
	return strings.Contains(q, "CREATE") || strings.Contains(q, "MERGE") ||
		strings.Contains(q, "SET ") || strings.Contains(q, "DELETE")
}
