package config

import "slices"

// Diff names the sections of next that differ from cur, in the words an
// operator would look for in ingress.yaml. Each section's own Equal decides.
func Diff(cur, next *Config) []string {
	var changed []string
	for _, s := range []struct {
		name string
		same bool
	}{
		{"routes", cur.Routes.Equal(next.Routes)},
		{"domain, orchestras", cur.Namespace.Equal(next.Namespace)},
		{"listeners, proxy_protocol, backend, timeouts, limits, refusals", cur.Ingress.Equal(next.Ingress)},
		{"admin", cur.Admin == next.Admin},
		{"tls.certificates", slices.Equal(cur.TLS.Certificates, next.TLS.Certificates)},
		{"tls.acme", cur.TLS.ACME.Equal(next.TLS.ACME)},
		{"tls.session_tickets", cur.TLS.SessionTickets == next.TLS.SessionTickets},
		{"tls.key_exchange", slices.Equal(cur.TLS.KeyExchange, next.TLS.KeyExchange)},
		{"dns", cur.DNS.Equal(next.DNS)},
		{"log", cur.Log == next.Log},
	} {
		if !s.same {
			changed = append(changed, s.name)
		}
	}
	return changed
}

// Equal reports whether two routes sections are the same.
func (r RoutesConfig) Equal(o RoutesConfig) bool {
	if r.File != o.File || r.RevokeAfter != o.RevokeAfter || (r.Etcd == nil) != (o.Etcd == nil) {
		return false
	}
	return r.Etcd == nil || r.Etcd.Equal(*o.Etcd)
}

// NeedRestart is Diff less what a reload (SIGHUP) applies: the certificate
// files. Every other section is held by sockets or by the running parts.
func NeedRestart(cur, next *Config) []string {
	return slices.DeleteFunc(Diff(cur, next), func(s string) bool { return s == "tls.certificates" })
}
