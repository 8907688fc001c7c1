package tlsconfig_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap/zaptest"

	"github.com/neo4j/private-ingress/internal/testenv/knottest"
	"github.com/neo4j/private-ingress/tlsconfig"
)

const challengeName = "_acme-challenge.production-orch-0000.neo4j.io."

// secretFile writes content to a file in a fresh directory.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tsig.secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRFC2136Check: the section's defaults, canonical names, and one
// error per key at fault.
func TestRFC2136Check(t *testing.T) {
	good := secretFile(t, "  c2VjcmV0LWtleS1ieXRlcw==\n\n")
	for _, tc := range []struct {
		name string
		in   tlsconfig.RFC2136
		want tlsconfig.RFC2136 // after Check, when errs is empty
		errs []string          // "key: part of the message, another part"
	}{
		{"defaults, canonical names",
			tlsconfig.RFC2136{Server: "ns1.example.com:53", TSIGName: "Ingress-ACME", TSIGSecretFile: good, Zone: "Neo4j.IO"},
			tlsconfig.RFC2136{Server: "ns1.example.com:53", TSIGName: "ingress-acme.", TSIGAlgorithm: "hmac-sha256", TSIGSecretFile: good, Zone: "neo4j.io."}, nil},
		{"name with the trailing dot, other algorithms' spellings",
			tlsconfig.RFC2136{Server: "[::1]:5353", TSIGName: "key.example.", TSIGAlgorithm: "HMAC-SHA512.", TSIGSecretFile: good},
			tlsconfig.RFC2136{Server: "[::1]:5353", TSIGName: "key.example.", TSIGAlgorithm: "hmac-sha512", TSIGSecretFile: good}, nil},
		{"sha384", tlsconfig.RFC2136{Server: "10.0.0.1:53", TSIGName: "k", TSIGAlgorithm: "hmac-sha384", TSIGSecretFile: good},
			tlsconfig.RFC2136{Server: "10.0.0.1:53", TSIGName: "k.", TSIGAlgorithm: "hmac-sha384", TSIGSecretFile: good}, nil},
		{"sha224", tlsconfig.RFC2136{Server: "10.0.0.1:53", TSIGName: "k", TSIGAlgorithm: "hmac-sha224", TSIGSecretFile: good},
			tlsconfig.RFC2136{Server: "10.0.0.1:53", TSIGName: "k.", TSIGAlgorithm: "hmac-sha224", TSIGSecretFile: good}, nil},
		{"sha1", tlsconfig.RFC2136{Server: "10.0.0.1:53", TSIGName: "k", TSIGAlgorithm: "hmac-sha1", TSIGSecretFile: good},
			tlsconfig.RFC2136{Server: "10.0.0.1:53", TSIGName: "k.", TSIGAlgorithm: "hmac-sha1", TSIGSecretFile: good}, nil},
		{"nothing set", tlsconfig.RFC2136{}, tlsconfig.RFC2136{},
			[]string{"server: the address", "tsig_name: the TSIG key's name is needed", "tsig_secret_file: a file holding"}},
		{"server without port", tlsconfig.RFC2136{Server: "ns1.example.com", TSIGName: "k", TSIGSecretFile: good}, tlsconfig.RFC2136{},
			[]string{`server: "ns1.example.com": want host:port`}},
		{"server port 0", tlsconfig.RFC2136{Server: "ns1.example.com:0", TSIGName: "k", TSIGSecretFile: good}, tlsconfig.RFC2136{},
			[]string{`server: "ns1.example.com:0": port "0" is not a number from 1 to 65535`}},
		{"server without host", tlsconfig.RFC2136{Server: ":53", TSIGName: "k", TSIGSecretFile: good}, tlsconfig.RFC2136{},
			[]string{`server: ":53": want host:port`}},
		{"md5 is gone", tlsconfig.RFC2136{Server: "ns:53", TSIGName: "k", TSIGAlgorithm: "hmac-md5", TSIGSecretFile: good}, tlsconfig.RFC2136{},
			[]string{`tsig_algorithm: unknown TSIG algorithm "hmac-md5" (known: hmac-sha256, hmac-sha512, hmac-sha384, hmac-sha224, hmac-sha1)`}},
		{"bad names", tlsconfig.RFC2136{Server: "ns:53", TSIGName: "a..b", TSIGSecretFile: good, Zone: "x..y"}, tlsconfig.RFC2136{},
			[]string{`tsig_name: "a..b" is not a DNS name`, `zone: "x..y" is not a DNS name`}},
		{"missing secret file", tlsconfig.RFC2136{Server: "ns:53", TSIGName: "k", TSIGSecretFile: filepath.Join(t.TempDir(), "none")}, tlsconfig.RFC2136{},
			[]string{"tsig_secret_file: reading the TSIG secret: stat "}},
		{"empty secret file", tlsconfig.RFC2136{Server: "ns:53", TSIGName: "k", TSIGSecretFile: secretFile(t, " \n")}, tlsconfig.RFC2136{},
			[]string{"tsig_secret_file: the TSIG secret file , is empty"}},
		{"a key statement, not the secret", tlsconfig.RFC2136{Server: "ns:53", TSIGName: "k", TSIGSecretFile: secretFile(t, "secret: c2VjcmV0\n")}, tlsconfig.RFC2136{},
			[]string{"tsig_secret_file: the TSIG secret file , does not hold a base64 secret alone"}},
		{"too big", tlsconfig.RFC2136{Server: "ns:53", TSIGName: "k", TSIGSecretFile: secretFile(t, strings.Repeat("QUFB", 2000))}, tlsconfig.RFC2136{},
			[]string{"tsig_secret_file: the TSIG secret file , is over 4096 bytes"}},
		{"a directory", tlsconfig.RFC2136{Server: "ns:53", TSIGName: "k", TSIGSecretFile: t.TempDir()}, tlsconfig.RFC2136{},
			[]string{"tsig_secret_file: the TSIG secret file , is not a regular file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.in
			errs := r.Check()
			var got []string
			for _, e := range errs {
				got = append(got, e.Key+": "+e.Err.Error())
			}
			if len(got) != len(tc.errs) {
				t.Fatalf("errors %q, want %d: %q", got, len(tc.errs), tc.errs)
			}
			for i, want := range tc.errs {
				// "key: part, part": the key, then parts of the message
				// (paths vary from run to run).
				for part := range strings.SplitSeq(want, ", ") {
					if !strings.Contains(got[i], part) {
						t.Errorf("error %d = %q, want %q", i, got[i], part)
					}
				}
			}
			if len(tc.errs) == 0 && r != tc.want {
				t.Errorf("after Check: %+v, want %+v", r, tc.want)
			}
		})
	}
}

// fakeAuthority is an in-process DNS server on loopback TCP that answers
// updates as answer says, signed or not, and SOA queries only at its apex
// (NOERROR with no SOA below: a server that leaves the authority section
// empty, so the zone is found by walking up).
type fakeAuthority struct {
	zone   string
	answer func(w dns.ResponseWriter, r, m *dns.Msg) // fills in the answer to an update
}

func (f *fakeAuthority) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	if r.Opcode == dns.OpcodeUpdate {
		f.answer(w, r, m)
	} else if q := r.Question[0]; q.Name == f.zone && q.Qtype == dns.TypeSOA {
		m.Answer = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: f.zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
			Ns: "ns1." + f.zone, Mbox: "hostmaster." + f.zone, Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 60}}
	}
	w.WriteMsg(m)
}

// signed signs the answer as a server that verified the request does.
func signed(w dns.ResponseWriter, r, m *dns.Msg) {
	if t := r.IsTsig(); t != nil && w.TsigStatus() == nil {
		m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
	}
}

func startFakeAuthority(t *testing.T, f *fakeAuthority, keyName, secret string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: f, TsigSecret: map[string]string{keyName: secret},
		// miekg/dns's default refuses opcodes other than QUERY and NOTIFY.
		MsgAcceptFunc: func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// TestRFC2136ChecksTheAnswer: an update succeeds only on a NOERROR answer
// signed with the key; an error answer is named, with the usual cause.
// The zone is found by walking up when the server puts no SOA in the
// authority section.
func TestRFC2136ChecksTheAnswer(t *testing.T) {
	secret := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	forger := base64.StdEncoding.EncodeToString([]byte("another key, which the client lacks"))
	for _, tc := range []struct {
		name         string
		serverSecret string // the server's secret for the key, if not the client's
		answer       func(w dns.ResponseWriter, r, m *dns.Msg)
		err          []string // parts of the error; none: success
	}{
		{"signed NOERROR", "", signed, nil},
		{"unsigned NOERROR", "", func(dns.ResponseWriter, *dns.Msg, *dns.Msg) {}, []string{"not signed"}},
		{"NOERROR signed with another secret", forger, func(_ dns.ResponseWriter, r, m *dns.Msg) {
			m.SetTsig(r.IsTsig().Hdr.Name, r.IsTsig().Algorithm, 300, time.Now().Unix())
		}, []string{"bad signature"}},
		{"REFUSED", "", func(w dns.ResponseWriter, r, m *dns.Msg) { m.Rcode = dns.RcodeRefused; signed(w, r, m) },
			[]string{"answered REFUSED", "ACL does not allow the TSIG key k. to update zone neo4j.io."}},
		{"BADTIME", "", func(w dns.ResponseWriter, r, m *dns.Msg) {
			m.Rcode = dns.RcodeNotAuth
			m.SetTsig(r.IsTsig().Hdr.Name, r.IsTsig().Algorithm, 300, time.Now().Unix())
			m.IsTsig().Error = dns.RcodeBadTime
		}, []string{"answered NOTAUTH (TSIG BADTIME)", "clock"}},
		{"NOTZONE", "", func(w dns.ResponseWriter, r, m *dns.Msg) { m.Rcode = dns.RcodeNotZone; signed(w, r, m) },
			[]string{"answered NOTZONE", "tls.acme.rfc2136.zone"}},
		{"SERVFAIL unsigned", "", func(_ dns.ResponseWriter, _, m *dns.Msg) { m.Rcode = dns.RcodeServerFailure },
			[]string{"answered SERVFAIL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAuthority{zone: "neo4j.io.", answer: tc.answer}
			addr := startFakeAuthority(t, f, "k.", cmp.Or(tc.serverSecret, secret))
			r := tlsconfig.RFC2136{Server: addr, TSIGName: "K", TSIGSecretFile: secretFile(t, secret)}
			if errs := r.Check(); errs != nil {
				t.Fatal(errs)
			}
			pub, err := tlsconfig.NewRFC2136(r)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if zone, err := pub.Zone(ctx, "_acme-challenge.a.b.neo4j.io"); zone != "neo4j.io." || err != nil {
				t.Fatalf("Zone = %q, %v", zone, err)
			}
			err = pub.AddTXT(ctx, challengeName, "token")
			if tc.err == nil && err != nil {
				t.Fatalf("AddTXT: %v", err)
			}
			for _, part := range tc.err {
				if err == nil || !strings.Contains(err.Error(), part) {
					t.Errorf("AddTXT error %v, want it to say %q", err, part)
				}
			}
		})
	}
}

// TestManageACMEProviderErrors: a provider that cannot publish stops
// ManageACME before anything is ordered, saying why.
func TestManageACMEProviderErrors(t *testing.T) {
	store := tlsconfig.NewStore(zaptest.NewLogger(t), nil)
	t.Cleanup(store.Close)
	for _, tc := range []struct {
		acme tlsconfig.ACME
		want string
	}{
		{tlsconfig.ACME{DNSProvider: "route53"}, `tls.acme.dns_provider "route53" is not known (known: stub, rfc2136)`},
		{tlsconfig.ACME{}, "needs the DNS stub (dns.address)"},
		{tlsconfig.ACME{DNSProvider: "rfc2136", RFC2136: tlsconfig.RFC2136{Server: "127.0.0.1:1", TSIGName: "k.", TSIGAlgorithm: "hmac-sha256",
			TSIGSecretFile: filepath.Join(t.TempDir(), "gone")}}, "tls.acme.rfc2136.tsig_secret_file: reading the TSIG secret"},
	} {
		tc.acme.Directory, tc.acme.Storage = "https://127.0.0.1:1/dir", t.TempDir()
		err := store.ManageACME(t.Context(), tc.acme, tlsconfig.ACMEOptions{Names: []string{wildcard}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.acme, err, tc.want)
		}
	}
}

// knotPublisher is a publisher for k's zone with its key, the section
// changed by mod first.
func knotPublisher(t *testing.T, k *knottest.Knot, mod func(*tlsconfig.RFC2136)) *tlsconfig.RFC2136Publisher {
	t.Helper()
	r := tlsconfig.RFC2136{Server: k.Addr, TSIGName: strings.TrimSuffix(k.Key.Name, "."), TSIGAlgorithm: k.Key.Algorithm, TSIGSecretFile: k.Key.SecretFile}
	if mod != nil {
		mod(&r)
	}
	if errs := r.Check(); errs != nil {
		t.Fatal(errs)
	}
	p, err := tlsconfig.NewRFC2136(r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRFC2136AddsAndRemovesAtKnot: against a real authority, each value
// is added beside the others at one name, with a short TTL, and removing
// one value leaves the others.
func TestRFC2136AddsAndRemovesAtKnot(t *testing.T) {
	for _, alg := range []string{"hmac-sha256", "hmac-sha512"} {
		t.Run(alg, func(t *testing.T) {
			k := knottest.Start(t, "neo4j.io.", alg)
			pub := knotPublisher(t, k, nil)
			ctx := t.Context()
			// As certmagic would: the wildcard's and the apex's
			// challenges at one name (written in any case).
			for _, v := range []string{"token-wildcard", "token-apex"} {
				if err := pub.AddTXT(ctx, strings.ToUpper(challengeName), v); err != nil {
					t.Fatalf("AddTXT %s: %v", v, err)
				}
			}
			if got := k.TXT(t, challengeName); !slices.Equal(sorted(got), []string{"token-apex", "token-wildcard"}) {
				t.Errorf("TXT after two adds: %q", got)
			}
			r, err := k.Query(challengeName, dns.TypeTXT)
			if err != nil || len(r.Answer) == 0 || r.Answer[0].Header().Ttl != 60 {
				t.Errorf("TXT answer %v, %v: want TTL 60", r, err)
			}
			if err := pub.RemoveTXT(ctx, challengeName, "token-wildcard"); err != nil {
				t.Fatalf("RemoveTXT: %v", err)
			}
			if got := k.TXT(t, challengeName); !slices.Equal(got, []string{"token-apex"}) {
				t.Errorf("TXT after removing one: %q, want the other only", got)
			}
			if err := pub.RemoveTXT(ctx, challengeName, "token-apex"); err != nil {
				t.Fatalf("RemoveTXT: %v", err)
			}
			if got := k.TXT(t, challengeName); len(got) != 0 {
				t.Errorf("TXT after removing both: %q", got)
			}
			if log := k.Log(t); strings.Count(log, "DDNS, finished") < 4 {
				t.Errorf("knotd logged fewer than 4 updates:\n%s", log)
			}
		})
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// TestRFC2136FindsTheZoneAtKnot: the zone of a name several labels below
// the apex comes from the SOA Knot puts in the authority section; a name
// Knot is not authoritative for is an error naming its answer; a zone
// given in the config is used as it is.
func TestRFC2136FindsTheZoneAtKnot(t *testing.T) {
	k := knottest.Start(t, "neo4j.io.", "hmac-sha256")
	ctx := t.Context()
	pub := knotPublisher(t, k, nil)
	deep := "_acme-challenge.a.b.c.production-orch-0000.neo4j.io."
	if zone, err := pub.Zone(ctx, deep); zone != "neo4j.io." || err != nil {
		t.Errorf("Zone(%s) = %q, %v", deep, zone, err)
	}
	if err := pub.AddTXT(ctx, deep, "deep"); err != nil {
		t.Fatal(err)
	}
	if got := k.TXT(t, deep); !slices.Equal(got, []string{"deep"}) {
		t.Errorf("TXT %s: %q", deep, got)
	}
	if _, err := pub.Zone(ctx, "_acme-challenge.example.com."); err == nil || !strings.Contains(err.Error(), "REFUSED") {
		t.Errorf("Zone outside Knot's zones: %v, want REFUSED", err)
	}

	wrongZone := knotPublisher(t, k, func(r *tlsconfig.RFC2136) { r.Zone = "production-orch-0000.neo4j.io" })
	err := wrongZone.AddTXT(ctx, challengeName, "x")
	if err == nil || !strings.Contains(err.Error(), "NOTAUTH: its ACL does not allow the TSIG key ingress-acme. to update zone production-orch-0000.neo4j.io., or it is not the zone's primary") {
		t.Errorf("update of a zone Knot does not have: %v", err)
	}
	rightZone := knotPublisher(t, k, func(r *tlsconfig.RFC2136) { r.Zone = "NEO4J.io." })
	if err := rightZone.AddTXT(ctx, challengeName, "given"); err != nil {
		t.Fatal(err)
	}
	if got := k.TXT(t, challengeName); !slices.Equal(got, []string{"given"}) {
		t.Errorf("TXT with the zone given: %q", got)
	}
}

// TestRFC2136WrongKeyAtKnot: an update signed with a secret, a key name
// or an algorithm Knot does not know, or with a key its ACL leaves out, is
// refused, and the error says where to look; nothing is published.
func TestRFC2136WrongKeyAtKnot(t *testing.T) {
	k := knottest.Start(t, "neo4j.io.", "hmac-sha256")
	other := base64.StdEncoding.EncodeToString([]byte("not the key Knot has, 32 bytes!!"))
	for _, tc := range []struct {
		name string
		mod  func(*tlsconfig.RFC2136)
		want string
	}{
		{"wrong secret", func(r *tlsconfig.RFC2136) { r.TSIGSecretFile = secretFile(t, other) },
			"NOTAUTH (TSIG BADSIG): the TSIG key ingress-acme. it has is not the one configured; check tsig_secret_file and tsig_algorithm"},
		{"unknown key name", func(r *tlsconfig.RFC2136) { r.TSIGName = "someone-else" },
			"NOTAUTH (TSIG BADKEY): it does not know the TSIG key someone-else. with hmac-sha256 (tsig_name, tsig_algorithm), or its ACL"},
		{"wrong algorithm", func(r *tlsconfig.RFC2136) { r.TSIGAlgorithm = "hmac-sha512" },
			"NOTAUTH (TSIG BADKEY): it does not know the TSIG key ingress-acme. with hmac-sha512"},
		// Knot answers a key it knows but its ACL leaves out as BADKEY too.
		{"key outside the ACL", func(r *tlsconfig.RFC2136) { r.TSIGName, r.TSIGSecretFile = k.Outsider.Name, k.Outsider.SecretFile },
			"NOTAUTH (TSIG BADKEY): it does not know the TSIG key outsider. with hmac-sha256 (tsig_name, tsig_algorithm), or its ACL does not allow that key to update zone neo4j.io."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := knotPublisher(t, k, tc.mod).AddTXT(t.Context(), challengeName, "forged")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("AddTXT with the %s: %v\nwant it to say: %s", tc.name, err, tc.want)
			}
		})
	}
	if got := k.TXT(t, challengeName); len(got) != 0 {
		t.Errorf("TXT after refused updates: %q", got)
	}
}
