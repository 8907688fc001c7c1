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
	// DNSProvider says who publishes the challenges' TXT records: the
	// in-process DNS stub (DNSProviderStub, the default), or the zones'
	// real authority through RFC 2136 updates (DNSProviderRFC2136), for
	// a public CA, which asks the public authority, not the stub.
	DNSProvider string  `yaml:"dns_provider"`
	RFC2136     RFC2136 `yaml:"rfc2136"` // with dns_provider rfc2136
}

// RFC2136 is tls.acme.rfc2136: the authoritative server that takes the
// challenges' dynamic updates, and the TSIG key they are signed with.
// Check (called by internal/config) applies its defaults and puts the
// names in canonical form.
type RFC2136 struct {
	Server         string `yaml:"server"`           // host:port of the primary that accepts updates
	TSIGName       string `yaml:"tsig_name"`        // the key's name as the server knows it; fully qualified once checked
	TSIGAlgorithm  string `yaml:"tsig_algorithm"`   // hmac-sha256 (default), hmac-sha512, hmac-sha384, hmac-sha224, hmac-sha1
	TSIGSecretFile string `yaml:"tsig_secret_file"` // holds the key's base64 secret alone, read at start
	Zone           string `yaml:"zone"`             // the zone to update; empty: found by an SOA query to Server
}

// The tls.acme.dns_provider values.
const (
	DNSProviderStub    = "stub"    // the in-process DNS stub's TXT store (dns.address)
	DNSProviderRFC2136 = "rfc2136" // RFC 2136 UPDATE signed with TSIG, to tls.acme.rfc2136.server
)

// DNSProviders lists the known tls.acme.dns_provider values, the default
// first.
func DNSProviders() []string { return []string{DNSProviderStub, DNSProviderRFC2136} }

// Defaults of the tls section, applied by internal/config.
const (
	DefaultACMEStorage    = "certmagic" // beside ingress.yaml
	DefaultTicketRotation = 12 * time.Hour
	DefaultDNSProvider    = DNSProviderStub
	DefaultTSIGAlgorithm  = "hmac-sha256"
)

// Equal reports whether two ACME sections are the same.
func (a ACME) Equal(o ACME) bool {
	return a.Directory == o.Directory && a.Email == o.Email && a.CARoot == o.CARoot &&
		a.Storage == o.Storage && a.wantsECDSA() == o.wantsECDSA() &&
		a.DNSProvider == o.DNSProvider && a.RFC2136 == o.RFC2136
}

// wantsECDSA reports whether an ECDSA certificate is obtained besides the
// RSA one: unless ecdsa is false.
func (a ACME) wantsECDSA() bool { return a.ECDSA == nil || *a.ECDSA }

// Enabled reports whether ACME is configured.
func (a ACME) Enabled() bool { return a.Directory != "" }
