package ingress_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/neo4j/private-ingress/internal/testenv"
	"github.com/neo4j/private-ingress/internal/testenv/loopback"
)

// startHTTPBackend serves HTTP/1.1 and cleartext HTTP/2 (prior knowledge),
// as a backend behind a service offering h2 must.
func startHTTPBackend(t *testing.T, name string) string {
	t.Helper()
	ln := loopback.Listen(t)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"instance":%q,"proto":%q,"host":%q}`+"\n", name, r.Proto, r.Host)
		}),
		Protocols: new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestCurlThroughHTTPS(t *testing.T) {
	curl := testenv.Command(t, "curl")
	backend := startHTTPBackend(t, "abcd1234")
	e := startEnv(t, fmt.Sprintf(`
instances:
  - {dbid: abcd1234, orch: "0000", public: true, backends: {https: [%[1]q], http: [%[1]q]}}
`, backend), withAlerts)
	host := fqdn("abcd1234")
	for _, tc := range []struct {
		service, flag, proto string
	}{
		{"https", "--http2", "HTTP/2.0"},
		{"https", "--http1.1", "HTTP/1.1"},
		{"http", "--http2", "HTTP/2.0"},
	} {
		t.Run(tc.service+tc.flag, func(t *testing.T) {
			_, port, _ := net.SplitHostPort(e.addr(tc.service))
			ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
			defer cancel()
			out, err := exec.CommandContext(ctx, curl, "-sS", "--fail", tc.flag,
				"--cacert", e.caFile,
				"--resolve", host+":"+port+":127.0.0.1",
				"https://"+host+":"+port+"/").CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			want := fmt.Sprintf(`{"instance":"abcd1234","proto":%q`, tc.proto)
			if !strings.HasPrefix(string(out), want) {
				t.Fatalf("curl printed %q, want it to start with %q", out, want)
			}
		})
	}
	// A name we do not serve: curl reports the alert.
	_, port, _ := net.SplitHostPort(e.addr("https"))
	other := "nosuchdb.production-orch-0000.neo4j.io"
	out, err := exec.Command(curl, "-sS", "--cacert", e.caFile, "--resolve", other+":"+port+":127.0.0.1",
		"https://"+other+":"+port+"/").CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(out)), "unrecognized name") {
		t.Fatalf("curl to an unknown dbid: %v\n%s", err, out)
	}
}

func TestOpenSSLCipherPolicy(t *testing.T) {
	openssl := testenv.Command(t, "openssl")
	a := startBackend(t, "a")
	e := startEnv(t, twoInstances(a, a))
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"TLS_AES_128_GCM_SHA256", []string{"-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"}, true},
		{"TLS_AES_256_GCM_SHA384", []string{"-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"}, true},
		{"TLS_CHACHA20_POLY1305_SHA256", []string{"-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"}, true},
		{"TLS_AES_128_CCM_SHA256", []string{"-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256"}, false},
		{"ECDHE-RSA-AES128-GCM-SHA256", []string{"-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"}, true},
		{"ECDHE-RSA-AES256-GCM-SHA384", []string{"-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"}, true},
		{"ECDHE-RSA-CHACHA20-POLY1305", []string{"-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"}, true},
		{"ECDHE-RSA-AES128-SHA256", []string{"-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA256"}, false},
		{"AES128-GCM-SHA256", []string{"-tls1_2", "-cipher", "AES128-GCM-SHA256"}, false},
		{"DHE-RSA-AES128-GCM-SHA256", []string{"-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"}, false},
		{"TLS 1.1", []string{"-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
			defer cancel()
			args := append([]string{"s_client", "-connect", e.addr("bolt"),
				"-servername", fqdn("abcd1234"), "-CAfile", e.caFile, "-verify_return_error"}, tc.args...)
			cmd := exec.CommandContext(ctx, openssl, args...)
			cmd.Stdin = strings.NewReader("") // EOF at once: handshake, then quit
			out, err := cmd.CombinedOutput()
			ok := err == nil && strings.Contains(string(out), "Verify return code: 0 (ok)")
			if ok != tc.ok {
				t.Fatalf("handshake ok=%v, want %v (%v)\n%s", ok, tc.ok, err, out)
			}
			// The suite asked for is the one negotiated (openssl names TLS
			// 1.2 suites its own way, TLS 1.3 ones by their IANA names).
			if ok && !strings.Contains(string(out), "Cipher is "+tc.name) {
				t.Errorf("negotiated another suite than %s:\n%s", tc.name, out)
			}
		})
	}
}
