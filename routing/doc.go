// Package routing maps a TLS server name to the database instance it names
// and to that instance's backends.
//
// A name is <dbid>.production-orch-<orch>.<domain>. The routing table is an
// immutable value: a reload builds a new Table aside and swaps it into a
// Holder atomically, so a connection sees one whole table and established
// connections are never affected. A Source keeps the Holder current: the
// routes file (Watcher) or a revisioned store such as etcd (EtcdSource,
// through the KVStore interface). routing knows nothing of TLS, sockets,
// etcd or logging; its sources report reloads through callbacks.
package routing
