package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// LoadRoots reads PEM certificates from file into a pool. An empty file
// name is the system's roots (nil).
func LoadRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return roots, nil
}

// ClientFiles name what a TLS client presents and trusts; empty fields are
// not used.
type ClientFiles struct {
	CA         string // PEM roots; empty: the system's
	Cert, Key  string // a client certificate and its key, for servers that ask
	ServerName string // the name to verify; empty: the dialled host
}

// ClientConfig builds the client side of a TLS leg the ingress dials (to
// etcd, to backends): TLS 1.2 at least, the roots and client certificate
// of f.
func ClientConfig(f ClientFiles) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	var err error
	if tc.RootCAs, err = LoadRoots(f.CA); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if f.Cert != "" || f.Key != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		// Presented whenever the server asks, even when its list of
		// acceptable CAs does not name the issuer (where crypto/tls would
		// send none): the server's verdict on the certificate, with its
		// alert, says more in the log than a missing certificate does.
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return tc, nil
}
