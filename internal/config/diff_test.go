package config

import (
	"slices"
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	const base = "orchestras: [\"0000\"]\ndns: {address: \"127.0.0.1:0\", answer_ipv4: [10.0.0.1]}\n"
	const certs = "tls: {certificates: [{cert: a.crt, key: a.key}]}\n"
	for _, tc := range []struct {
		name, extra string
		want        []string // what NeedRestart names
	}{
		{"nothing", "", nil},
		{"log level", "log: {level: debug}\n", []string{"log"}},
		{"same as the default, spelt out", "log: {level: info}\nlimits: {max_connections: 100000}\n", nil},
		{"limits", "limits: {max_connections: 5}\n", []string{"listeners, proxy_protocol, backend, timeouts, limits, refusals"}},
		{"listener alpn", "listeners: [{service: bolt, address: \":7687\", alpn: [x]}]\n", []string{"listeners, proxy_protocol, backend, timeouts, limits, refusals"}},
		{"routes file", "routes: {file: other.yaml}\n", []string{"routes"}},
		{"orchestras", "orchestras: [\"0000\", \"0001\"]\n", []string{"domain, orchestras"}},
		{"key exchange", "tls:\n  certificates: [{cert: a.crt, key: a.key}]\n  key_exchange: [X25519]\n", []string{"tls.key_exchange"}},
		{"certificates apply at reload", "tls:\n  certificates: [{cert: b.crt, key: b.key}]\n", nil},
		{"admin", "admin: {address: \"127.0.0.1:1\"}\n", []string{"admin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cur := mustParse(t, dir, base+certs)
			extra := tc.extra
			if !strings.Contains(extra, "tls:") {
				extra += certs
			}
			next := mustParse(t, dir, strings.Replace(base+extra, "orchestras: [\"0000\"]\n", "", strings.Count(extra, "orchestras")))
			if got := NeedRestart(cur, next); !slices.Equal(got, tc.want) {
				t.Errorf("NeedRestart = %q, want %q", got, tc.want)
			}
		})
	}
}
