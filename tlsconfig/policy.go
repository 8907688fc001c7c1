// Package tlsconfig owns the TLS side of the ingress: the protocol and cipher
// policy, the certificates (a certmagic cache fed from PEM files and by
// ACME DNS-01), the session ticket keys, the per-listener *tls.Config, and
// the client side of the TLS legs the ingress dials (ClientConfig). It
// knows nothing of routes.
package tlsconfig

import "crypto/tls"

// cipherSuites12 are the TLS 1.2 suites of the security policy. The policy
// also allows DHE_RSA with AES-GCM, but crypto/tls implements no DHE at all,
// so those cannot be offered. TLS 1.3 suites are not configurable in Go; its
// three defaults are exactly the three the policy allows.
var cipherSuites12 = [...]uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// CipherSuites returns the TLS 1.2 cipher suites the ingress offers.
func CipherSuites() []uint16 {
	s := cipherSuites12
	return s[:]
}

// ApplyPolicy sets the version and suite policy on c: TLS 1.2 and 1.3 only,
// the three ECDHE_RSA AEAD suites for 1.2. Go's server never renegotiates
// and never compresses, so nothing needs turning off for those.
func ApplyPolicy(c *tls.Config) {
	c.MinVersion = tls.VersionTLS12
	c.MaxVersion = tls.VersionTLS13
	c.CipherSuites = CipherSuites()
}
