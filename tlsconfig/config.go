package tlsconfig

import "time"

// Config is the tls: section of ingress.yaml.
type Config struct {
	Certificates   []CertFiles    `yaml:"certificates"`
	ACME           ACME           `yaml:"acme"`
	SessionTickets SessionTickets `yaml:"session_tickets"`
	// KeyExchange is the set of key exchange groups accepted; absent is
	// Go's default, post-quantum hybrids included. See README.
	KeyExchange []string `yaml:"key_exchange"`
}

// CertFiles names a PEM certificate chain and its key. Relative paths are
// resolved against the config file by internal/config.
type CertFiles struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// ACME configures certmagic-managed certificates (DNS-01).
type ACME struct {
	Directory string `yaml:"directory"` // the ACME directory URL
	Email     string `yaml:"email"`
	CARoot    string `yaml:"ca_root"` // PEM roots for the directory's HTTPS (a test CA); empty: the system's
	Storage   string `yaml:"storage"` // certmagic file storage; internal/config defaults it
	ECDSA     *bool  `yaml:"ecdsa"`   // also an ECDSA P-256 certificate; default true
}

// Defaults of the tls section, applied by internal/config.
const (
	DefaultACMEStorage    = "certmagic" // beside ingress.yaml
	DefaultTicketRotation = 12 * time.Hour
)

// Equal reports whether two ACME sections are the same.
func (a ACME) Equal(o ACME) bool {
	return a.Directory == o.Directory && a.Email == o.Email && a.CARoot == o.CARoot &&
		a.Storage == o.Storage && a.wantsECDSA() == o.wantsECDSA()
}

// wantsECDSA reports whether an ECDSA certificate is obtained besides the
// RSA one: unless ecdsa is false.
func (a ACME) wantsECDSA() bool { return a.ECDSA == nil || *a.ECDSA }

// Enabled reports whether ACME is configured.
func (a ACME) Enabled() bool { return a.Directory != "" }
