// Package bench holds load benchmarks of the whole ingress: `go test -bench`
// runs the real server in-process on loopback against echo and sink
// backends and reports handshakes, round trips and throughput. The
// comparison with HAProxy and nginx is bench/compare (make bench-compare),
// with bench/loadgen as its load generator; bench/README.md has both and
// the figures.
package bench
