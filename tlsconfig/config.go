package tlsconfig

// Config is the tls: section of ingress.yaml.
type Config struct {
	Certificates []CertFiles `yaml:"certificates"`
	ACME         ACME        `yaml:"acme"`
}

// CertFiles names a PEM certificate chain and its key. Relative paths are
// resolved against the config file by internal/config.
type CertFiles struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// ACME configures certmagic-managed certificates (DNS-01).
type ACME struct {
	Directory string `yaml:"directory"`
	Email     string `yaml:"email"`
	CARoot    string `yaml:"ca_root"`
}

// Enabled reports whether ACME is configured.
func (a ACME) Enabled() bool { return a.Directory != "" }
