package dnsstub

import (
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the stub's Prometheus metrics; a nil *metrics records nothing.
type metrics struct {
	queries  *prometheus.CounterVec
	duration prometheus.Histogram
	panics   prometheus.Counter
	// tcpRefused counts DNS-over-TCP connections closed at accept.
	tcpRefused prometheus.Counter

	fastA, fastAAAA prometheus.Counter // the fast path's NOERROR children, resolved once
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dnsstub_queries_total",
			Help: "DNS queries answered, by query type and response code.",
		}, []string{"qtype", "rcode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dnsstub_query_duration_seconds",
			Help:    "Time to answer a query, forwarding included.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .01, .1, 1},
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dnsstub_panics_total",
			Help: "Panics recovered while answering a query.",
		}),
		tcpRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dnsstub_tcp_refused_total",
			Help: "DNS-over-TCP connections closed at accept because dns.max_tcp_connections were open.",
		}),
	}
	m.fastA = m.queries.WithLabelValues("A", "NOERROR")
	m.fastAAAA = m.queries.WithLabelValues("AAAA", "NOERROR")
	reg.MustRegister(m.queries, m.duration, m.panics, m.tcpRefused)
	return m
}

// observe counts one answered query.
func (m *metrics) observe(qtype uint16, rcode int, start time.Time) {
	if m == nil {
		return
	}
	m.queries.WithLabelValues(qtypeLabel(qtype), rcodeLabel(rcode)).Inc()
	m.duration.Observe(time.Since(start).Seconds())
}

// refusedTCP counts one DNS-over-TCP connection closed at accept.
func (m *metrics) refusedTCP() {
	if m != nil {
		m.tcpRefused.Inc()
	}
}

// qtypeLabel keeps the qtype label to a small fixed set: a client choosing
// arbitrary type numbers must not create series.
func qtypeLabel(t uint16) string {
	switch t {
	case dns.TypeA, dns.TypeAAAA, dns.TypeSOA, dns.TypeNS, dns.TypeTXT, dns.TypeANY,
		dns.TypeCNAME, dns.TypeMX, dns.TypeSRV, dns.TypeHTTPS, dns.TypePTR, dns.TypeCAA,
		dns.TypeAXFR, dns.TypeIXFR:
		return dns.TypeToString[t]
	}
	return "other"
}

func rcodeLabel(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "other"
}
