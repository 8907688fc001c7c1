package ingress

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/neo4j/private-ingress/routing"
)

// result is the fixed outcome label of a connection.
type result uint8

const (
	resultNone result = iota // not decided yet
	resultOK
	resultNoSNI
	resultUnknownHost
	resultUnknownDBID
	resultDenied
	resultHandshakeError
	resultBackendUnavailable
	resultProxyProtocolError
	resultLimit
	resultProbe   // a bare connect or a load balancer's health check: sent nothing, closed
	resultRevoked // closed after a reload revoked its access (routes.revoke_after)
	resultPaused  // the instance is paused (paused: true in routes): nothing dialled
	numResults
)

var resultNames = [numResults]string{
	"", "ok", "no_sni", "unknown_host", "unknown_dbid", "denied",
	"handshake_error", "backend_unavailable", "proxy_protocol_error", "limit",
	"probe", "revoked", "paused",
}

func (r result) String() string { return resultNames[r] }

// Metrics are the ingress's Prometheus metrics. Children for every label
// value are resolved once, so the connection path does no label lookups.
// A nil *Metrics is valid and records nothing.
type Metrics struct {
	conns     [routing.NumServices][numResults]prometheus.Counter
	active    [routing.NumServices]prometheus.Gauge
	handshake [routing.NumServices]prometheus.Observer
	bytesIn   [routing.NumServices]prometheus.Counter // client to backend
	bytesOut  [routing.NumServices]prometheus.Counter // backend to client
	dialDur   prometheus.Histogram
	dialErrs  prometheus.Counter
	routes    prometheus.Gauge
	reloads   *prometheus.CounterVec
	panics    prometheus.Counter
	revokes   [routing.NumServices]prometheus.Counter // ingress_connections_revoked_total (revoke.go)
	parkedNow [routing.NumServices]prometheus.Gauge   // ingress_parked_connections (copy.go)
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	conns := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ingress_connections_total",
		Help: "Connections finished, by service and result.",
	}, []string{"service", "result"})
	active := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ingress_active_connections",
		Help: "Connections open now, by service.",
	}, []string{"service"})
	handshake := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ingress_handshake_duration_seconds",
		Help:    "Time from accept to a completed TLS handshake.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
	}, []string{"service"})
	parked := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ingress_parked_connections",
		Help: "Open connections idle long enough (timeouts.park) to hold no goroutine, by service.",
	}, []string{"service"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ingress_bytes_total",
		Help: "Bytes proxied, by service and direction (in: client to backend, out: backend to client).",
	}, []string{"service", "direction"})
	m := &Metrics{
		dialDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ingress_backend_dial_duration_seconds",
			Help:    "Time to connect to a backend, failed attempts included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}),
		dialErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingress_backend_dial_errors_total",
			Help: "Backend dials that failed.",
		}),
		routes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ingress_routes",
			Help: "Instances in the routing table in use.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingress_config_reloads_total",
			Help: "Reloads of routes, certificates and config, by result (ok, error).",
		}, []string{"result"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingress_panics_total",
			Help: "Panics recovered in connection handlers.",
		}),
	}
	for s := range routing.NumServices {
		name := s.String()
		for r := resultOK; r < numResults; r++ {
			m.conns[s][r] = conns.WithLabelValues(name, r.String())
		}
		m.active[s] = active.WithLabelValues(name)
		m.parkedNow[s] = parked.WithLabelValues(name)
		m.handshake[s] = handshake.WithLabelValues(name)
		m.bytesIn[s] = bytes.WithLabelValues(name, "in")
		m.bytesOut[s] = bytes.WithLabelValues(name, "out")
	}
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	reg.MustRegister(conns, active, parked, handshake, bytes, m.dialDur, m.dialErrs, m.routes, m.reloads, m.panics)
	m.revokes = newRevokedCounter(reg)
	return m
}

// The data path's counts. Every method is a no-op on a nil *Metrics, so
// the path reads without a check at each step.

func (m *Metrics) opened(svc routing.Service) {
	if m != nil {
		m.active[svc].Inc()
	}
}

// parked counts connections that lost (1) or regained (-1) their last
// copy goroutine.
func (m *Metrics) parked(svc routing.Service, delta float64) {
	if m != nil {
		m.parkedNow[svc].Add(delta)
	}
}

func (m *Metrics) handshook(svc routing.Service, d time.Duration) {
	if m != nil {
		m.handshake[svc].Observe(d.Seconds())
	}
}

func (m *Metrics) dialed(d time.Duration, err error) {
	if m == nil {
		return
	}
	m.dialDur.Observe(d.Seconds())
	if err != nil {
		m.dialErrs.Inc()
	}
}

// closed counts a connection that was opened; in and out are the bytes
// copied each way.
func (m *Metrics) closed(svc routing.Service, r result, in, out int64) {
	if m == nil {
		return
	}
	m.active[svc].Dec()
	m.conns[svc][r].Inc()
	if in > 0 {
		m.bytesIn[svc].Add(float64(in))
	}
	if out > 0 {
		m.bytesOut[svc].Add(float64(out))
	}
}

// refused counts a connection closed at accept, never opened.
func (m *Metrics) refused(svc routing.Service, r result) {
	if m != nil {
		m.conns[svc][r].Inc()
	}
}

func (m *Metrics) panicked() {
	if m != nil {
		m.panics.Inc()
	}
}

// SetRoutes records the size of the routing table in use.
func (m *Metrics) SetRoutes(n int) {
	if m != nil {
		m.routes.Set(float64(n))
	}
}

// Reloaded counts one reload attempt.
func (m *Metrics) Reloaded(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.reloads.WithLabelValues("error").Inc()
	} else {
		m.reloads.WithLabelValues("ok").Inc()
	}
}
