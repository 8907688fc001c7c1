package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"
)

// minRSABits is the smallest RSA key the policy allows.
const minRSABits = 2048

// Leaf describes a certificate chain's leaf.
type Leaf struct {
	Names    []string
	KeyType  string // "RSA-2048", "ECDSA-P256", ...
	RSA      bool
	NotAfter time.Time
}

// InspectFiles parses a certificate chain and key from PEM files and checks
// them against the policy: they must match, and an RSA key must be at least
// 2048 bits.
func InspectFiles(f CertFiles) (Leaf, error) {
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return Leaf{}, fmt.Errorf("reading certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return Leaf{}, fmt.Errorf("reading key: %w", err)
	}
	_, leaf, err := inspect(certPEM, keyPEM)
	return leaf, err
}

func inspect(certPEM, keyPEM []byte) (tls.Certificate, Leaf, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, Leaf{}, fmt.Errorf("loading key pair: %w", err)
	}
	x, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return tls.Certificate{}, Leaf{}, fmt.Errorf("parsing certificate: %w", err)
	}
	leaf := Leaf{Names: x.DNSNames, NotAfter: x.NotAfter}
	switch pub := x.PublicKey.(type) {
	case *rsa.PublicKey:
		bits := pub.N.BitLen()
		leaf.KeyType, leaf.RSA = fmt.Sprintf("RSA-%d", bits), true
		if bits < minRSABits {
			return tls.Certificate{}, leaf, fmt.Errorf("RSA key of %d bits: the policy needs at least %d", bits, minRSABits)
		}
	case *ecdsa.PublicKey:
		leaf.KeyType = "ECDSA-" + pub.Curve.Params().Name
	default:
		leaf.KeyType = fmt.Sprintf("%T", pub)
	}
	return pair, leaf, nil
}
