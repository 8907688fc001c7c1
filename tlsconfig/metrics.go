package tlsconfig

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the certificates' metrics: when each served certificate
// expires, and how ACME issuance went. A nil *Metrics records nothing.
type Metrics struct {
	issued *prometheus.CounterVec
	expiry *prometheus.Desc
	store  atomic.Pointer[Store]
}

// NewMetrics registers the certificate metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingress_certificate_renewals_total",
			Help: "ACME certificates obtained or renewed (result=ok), and attempts that failed (result=error).",
		}, []string{"result"}),
		expiry: prometheus.NewDesc("ingress_certificate_expiry_timestamp_seconds",
			"When each served certificate expires (Unix time), by name and key type.", []string{"name", "key"}, nil),
	}
	m.issued.WithLabelValues("ok")
	m.issued.WithLabelValues("error")
	reg.MustRegister(m.issued, (*expiryCollector)(m))
	return m
}

func (m *Metrics) watch(s *Store) {
	if m != nil {
		m.store.Store(s)
	}
}

// onEvent counts certmagic's issuance outcomes.
func (m *Metrics) onEvent(_ context.Context, event string, _ map[string]any) error {
	if m == nil {
		return nil
	}
	switch event {
	case "cert_obtained":
		m.issued.WithLabelValues("ok").Inc()
	case "cert_failed":
		m.issued.WithLabelValues("error").Inc()
	}
	return nil
}

// expiryCollector reads the expiry of every certificate in the store's
// cache at scrape time, so the gauge can never disagree with what is served.
type expiryCollector Metrics

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.expiry }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.store.Load()
	if s == nil {
		return
	}
	s.mu.Lock()
	names := append([]string(nil), s.acmeNames...)
	for _, p := range s.loaded {
		names = append(names, p.leaf.Names...)
	}
	s.mu.Unlock()
	seen := map[string]bool{}
	for _, name := range names {
		for _, cert := range s.cache.AllMatchingCertificates(name) {
			if seen[cert.Hash()+name] || cert.Leaf == nil {
				continue
			}
			seen[cert.Hash()+name] = true
			ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue,
				float64(cert.Leaf.NotAfter.Unix()), name, keyName(cert.PrivateKey))
		}
	}
}

func keyName(key any) string {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PrivateKey:
		return "ECDSA-" + k.Curve.Params().Name
	}
	return "other"
}
