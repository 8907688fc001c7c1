package tlsconfig

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Settings of RFC 2136 publishing that are ours, not the operator's.
const (
	// challengeTTL is the challenge records' TTL: a resolver must not keep
	// an old token once a retried challenge has published a new one.
	challengeTTL = 60 * time.Second
	// exchangeTimeout bounds one DNS exchange with the server when the
	// caller's context has no earlier deadline.
	exchangeTimeout = 10 * time.Second
	// tsigFudge is the clock skew the server may allow the signature
	// (RFC 8945's recommended 300 s).
	tsigFudge = 300
	// maxSecretFile bounds what is read of tsig_secret_file: a base64
	// HMAC key is well under 1 KiB; anything bigger is the wrong file.
	maxSecretFile = 4096
)

// tsigAlgorithms maps the tsig_algorithm names to miekg/dns's. HMAC-MD5 is
// left out: miekg/dns no longer signs with it.
var tsigAlgorithms = []struct{ name, alg string }{
	{"hmac-sha256", dns.HmacSHA256},
	{"hmac-sha512", dns.HmacSHA512},
	{"hmac-sha384", dns.HmacSHA384},
	{"hmac-sha224", dns.HmacSHA224},
	{"hmac-sha1", dns.HmacSHA1},
}

// tsigAlgorithm returns miekg/dns's name of a tsig_algorithm setting,
// written in any case, with or without the trailing dot.
func tsigAlgorithm(name string) (string, error) {
	n := strings.TrimSuffix(strings.ToLower(name), ".")
	var known []string
	for _, a := range tsigAlgorithms {
		if a.name == n {
			return a.alg, nil
		}
		known = append(known, a.name)
	}
	return "", fmt.Errorf("unknown TSIG algorithm %q (known: %s)", name, strings.Join(known, ", "))
}

// ReadTSIGSecret reads a TSIG key's base64 secret from a file that holds
// it alone (surrounding whitespace is trimmed), as keymgr and tsig-keygen
// print it after "secret".
func ReadTSIGSecret(path string) (string, error) {
	// Stat first: opening a FIFO named by mistake would block.
	if fi, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("reading the TSIG secret: %w", err)
	} else if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("the TSIG secret file %s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading the TSIG secret: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("reading the TSIG secret %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("the TSIG secret file %s is over %d bytes: it should hold the base64 secret alone", path, maxSecretFile)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("the TSIG secret file %s is empty", path)
	}
	if key, err := base64.StdEncoding.DecodeString(secret); err != nil || len(key) == 0 {
		return "", fmt.Errorf("the TSIG secret file %s does not hold a base64 secret alone (%v); write only the value after \"secret\"", path, err)
	}
	return secret, nil
}

// SettingError is one problem in a section, with the key at fault, for
// internal/config to place in the file.
type SettingError struct {
	Key string
	Err error
}

// Check applies the section's defaults, puts its names in canonical form
// (lower case, fully qualified: the TSIG key's name is signed in that
// form, so "key" and "key." are one key) and reads the secret file, whose
// path must be resolved already. It returns every problem, key by key.
func (r *RFC2136) Check() []SettingError {
	var errs []SettingError
	add := func(key, format string, args ...any) {
		errs = append(errs, SettingError{key, fmt.Errorf(format, args...)})
	}
	if r.Server == "" {
		add("server", "the address of the zone's primary server is needed, host:port (e.g. ns1.example.com:53)")
	} else if err := checkServerAddr(r.Server); err != nil {
		add("server", "%q: %v", r.Server, err)
	}
	if r.TSIGName == "" {
		add("tsig_name", "the TSIG key's name is needed, as the server knows it")
	} else if _, ok := dns.IsDomainName(r.TSIGName); !ok {
		add("tsig_name", "%q is not a DNS name", r.TSIGName)
	} else {
		r.TSIGName = dns.CanonicalName(r.TSIGName)
	}
	if r.TSIGAlgorithm == "" {
		r.TSIGAlgorithm = DefaultTSIGAlgorithm
	}
	if _, err := tsigAlgorithm(r.TSIGAlgorithm); err != nil {
		add("tsig_algorithm", "%v", err)
	} else {
		r.TSIGAlgorithm = strings.TrimSuffix(strings.ToLower(r.TSIGAlgorithm), ".")
	}
	if r.TSIGSecretFile == "" {
		add("tsig_secret_file", "a file holding the TSIG key's base64 secret is needed")
	} else if _, err := ReadTSIGSecret(r.TSIGSecretFile); err != nil {
		add("tsig_secret_file", "%v", err)
	}
	if r.Zone != "" {
		if _, ok := dns.IsDomainName(r.Zone); !ok {
			add("zone", "%q is not a DNS name", r.Zone)
		} else {
			r.Zone = dns.CanonicalName(r.Zone)
		}
	}
	return errs
}

// checkServerAddr accepts host:port with a host and a port from 1 to 65535.
func checkServerAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return errors.New("want host:port, e.g. ns1.example.com:53")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

// RFC2136Publisher publishes DNS-01 challenges at the zone's authority by
// RFC 2136 dynamic updates signed with TSIG: the standard protocol BIND,
// Knot, PowerDNS and others take, so no DNS provider's API is needed. It
// speaks TCP only: updates and their signatures are not bounded by a UDP
// datagram, and an answer cannot be spoofed as easily. It is safe for
// concurrent use (the RSA and ECDSA orders publish at once).
type RFC2136Publisher struct {
	cfg    RFC2136
	alg    string
	client *dns.Client

	mu    sync.Mutex
	zones map[string]string // challenge name → its zone, found by SOA
}

var _ ChallengePublisher = (*RFC2136Publisher)(nil)

// NewRFC2136 returns a publisher for a checked tls.acme.rfc2136 section
// (see RFC2136.Check); it reads the secret file now.
func NewRFC2136(r RFC2136) (*RFC2136Publisher, error) {
	alg, err := tsigAlgorithm(r.TSIGAlgorithm)
	if err != nil {
		return nil, fmt.Errorf("tls.acme.rfc2136.tsig_algorithm: %w", err)
	}
	secret, err := ReadTSIGSecret(r.TSIGSecretFile)
	if err != nil {
		return nil, fmt.Errorf("tls.acme.rfc2136.tsig_secret_file: %w", err)
	}
	r.TSIGName = dns.CanonicalName(r.TSIGName)
	if r.Zone != "" {
		r.Zone = dns.CanonicalName(r.Zone)
	}
	return &RFC2136Publisher{
		cfg: r, alg: alg, zones: map[string]string{},
		client: &dns.Client{Net: "tcp", Timeout: exchangeTimeout, TsigSecret: map[string]string{r.TSIGName: secret}},
	}, nil
}

// AddTXT inserts the TXT record name → value, beside any others at name
// (the wildcard's and the apex's challenges share one name).
func (p *RFC2136Publisher) AddTXT(ctx context.Context, name, value string) error {
	return p.update(ctx, name, value, true)
}

// RemoveTXT deletes exactly the TXT record name → value; other values at
// name stay.
func (p *RFC2136Publisher) RemoveTXT(ctx context.Context, name, value string) error {
	return p.update(ctx, name, value, false)
}

func (p *RFC2136Publisher) update(ctx context.Context, name, value string, add bool) error {
	name = dns.CanonicalName(name)
	zone, err := p.Zone(ctx, name)
	if err != nil {
		return err
	}
	rr := &dns.TXT{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: uint32(challengeTTL / time.Second)},
		Txt: txtStrings(value),
	}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	what := "adding"
	if add {
		m.Insert([]dns.RR{rr})
	} else {
		what = "removing"
		m.Remove([]dns.RR{rr}) // class NONE: this value only, not the whole RRset
	}
	m.SetTsig(p.cfg.TSIGName, p.alg, tsigFudge, time.Now().Unix())
	if err := p.send(ctx, m, zone); err != nil {
		p.forget(name) // the zone may have moved: look again next time
		return fmt.Errorf("%s TXT %s in zone %s at %s: %w", what, name, zone, p.cfg.Server, err)
	}
	return nil
}

// send sends a signed update and checks the answer: its rcode, and that
// it is signed with our key (miekg/dns verifies a signature that is there,
// but accepts an answer that has none).
func (p *RFC2136Publisher) send(ctx context.Context, m *dns.Msg, zone string) error {
	r, _, err := p.client.ExchangeContext(ctx, m, p.cfg.Server)
	if r != nil && r.Rcode != dns.RcodeSuccess {
		// An error answer is often unsigned or signed with an error
		// (BADKEY, BADSIG): its rcode says more than the failed check.
		return p.rcodeError(r, zone)
	}
	if err != nil {
		return err
	}
	t := r.IsTsig()
	if t == nil {
		return errors.New("the answer is not signed: it cannot be told from a forgery")
	}
	if t.Error != dns.RcodeSuccess {
		return fmt.Errorf("the answer's TSIG says %s", rcodeName(int(t.Error)))
	}
	return nil
}

// rcodeError explains an update's error answer, with what usually causes
// it: a TSIG error says the key is wrong or (Knot: BADKEY) not allowed;
// NOTAUTH or REFUSED without one says the key is fine but not allowed, or
// the server is the wrong one.
func (p *RFC2136Publisher) rcodeError(r *dns.Msg, zone string) error {
	rcode := rcodeName(r.Rcode)
	var tsigErr uint16
	if t := r.IsTsig(); t != nil {
		tsigErr = t.Error
	}
	if tsigErr != dns.RcodeSuccess {
		rcode += " (TSIG " + rcodeName(int(tsigErr)) + ")"
	}
	key := p.cfg.TSIGName
	switch {
	case tsigErr == dns.RcodeBadTime:
		return fmt.Errorf("the server answered %s: this host's clock and the server's differ by more than %d s", rcode, tsigFudge)
	case tsigErr == dns.RcodeBadKey:
		return fmt.Errorf("the server answered %s: it does not know the TSIG key %s with %s (tsig_name, tsig_algorithm), "+
			"or its ACL does not allow that key to update zone %s", rcode, key, p.cfg.TSIGAlgorithm, zone)
	case tsigErr != dns.RcodeSuccess:
		return fmt.Errorf("the server answered %s: the TSIG key %s it has is not the one configured; "+
			"check tsig_secret_file and tsig_algorithm against the server's key", rcode, key)
	case r.Rcode == dns.RcodeNotAuth || r.Rcode == dns.RcodeRefused:
		return fmt.Errorf("the server answered %s: its ACL does not allow the TSIG key %s to update zone %s, "+
			"or it is not the zone's primary", rcode, key, zone)
	case r.Rcode == dns.RcodeNotZone:
		return fmt.Errorf("the server answered %s: the name is not in zone %s; check tls.acme.rfc2136.zone", rcode, zone)
	default:
		return fmt.Errorf("the server answered %s", rcode)
	}
}

func rcodeName(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return "rcode " + strconv.Itoa(rcode)
}

// Zone returns the zone that holds name: tls.acme.rfc2136.zone if set,
// else the owner of the SOA the server returns for name or, failing that,
// for its nearest parent that has one. An authoritative server puts the
// SOA in the answer at the apex and in the authority section for other
// names of the zone (NXDOMAIN, NODATA), so one query usually does.
func (p *RFC2136Publisher) Zone(ctx context.Context, name string) (string, error) {
	if p.cfg.Zone != "" {
		return p.cfg.Zone, nil
	}
	name = dns.CanonicalName(name)
	p.mu.Lock()
	zone, ok := p.zones[name]
	p.mu.Unlock()
	if ok {
		return zone, nil
	}
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		q := new(dns.Msg)
		q.SetQuestion(name[off:], dns.TypeSOA)
		q.RecursionDesired = false
		r, _, err := p.client.ExchangeContext(ctx, q, p.cfg.Server)
		if err != nil {
			return "", fmt.Errorf("finding the zone of %s: SOA query to %s: %w", name, p.cfg.Server, err)
		}
		if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			return "", fmt.Errorf("finding the zone of %s: %s answered %s for %s: it is not the zone's primary, or set tls.acme.rfc2136.zone",
				name, p.cfg.Server, rcodeName(r.Rcode), name[off:])
		}
		for _, rr := range slices.Concat(r.Answer, r.Ns) {
			if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(soa.Hdr.Name, name) {
				zone = dns.CanonicalName(soa.Hdr.Name)
				p.mu.Lock()
				p.zones[name] = zone
				p.mu.Unlock()
				return zone, nil
			}
		}
	}
	return "", fmt.Errorf("finding the zone of %s: %s returned no SOA for it or its parents; set tls.acme.rfc2136.zone", name, p.cfg.Server)
}

// forget drops the zone found for name.
func (p *RFC2136Publisher) forget(name string) {
	p.mu.Lock()
	delete(p.zones, name)
	p.mu.Unlock()
}

// txtStrings splits a TXT value into the at most 255-byte strings a TXT
// record holds; ACME's are 43 bytes, one string.
func txtStrings(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}
