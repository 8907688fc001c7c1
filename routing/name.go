package routing

import "strings"

// orchPrefix starts the second label of every database name.
const orchPrefix = "production-orch-"

// maxName is the longest DNS name in presentation form without the root dot.
const maxName = 253

// SplitName splits host, a name of the form <dbid>.production-orch-<orch>.<domain>
// with an optional trailing dot, into its dbid and orch labels. Comparison is
// ASCII case-insensitive; the returned labels are substrings of host in the case
// they were given. Anything else — extra or empty labels, non-LDH characters, an
// IP literal, another domain — is refused. domain must be lower case without a
// trailing dot. SplitName does not allocate.
func SplitName(host, domain string) (dbid, orch string, ok bool) {
	host = strings.TrimSuffix(host, ".")
	if domain == "" || len(host) > maxName || len(host) <= len(domain)+1 {
		return "", "", false
	}
	cut := len(host) - len(domain) - 1
	if host[cut] != '.' || !strings.EqualFold(host[cut+1:], domain) {
		return "", "", false
	}
	rest := host[:cut] // <dbid>.production-orch-<orch>
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return "", "", false
	}
	dbid, orchLabel := rest[:dot], rest[dot+1:]
	if !isLabel(dbid) || !isLabel(orchLabel) ||
		len(orchLabel) <= len(orchPrefix) || !strings.EqualFold(orchLabel[:len(orchPrefix)], orchPrefix) {
		return "", "", false
	}
	return dbid, orchLabel[len(orchPrefix):], true
}

// isLabel reports whether s is one LDH label: 1–63 letters, digits and
// hyphens, not starting or ending with a hyphen. Punycode (xn--) labels are
// LDH and pass; raw UTF-8 does not.
func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ZoneName returns the DNS zone that holds the databases of orch:
// production-orch-<orch>.<domain>.
func ZoneName(orch, domain string) string {
	return orchPrefix + orch + "." + domain
}

// ValidLabel reports whether s is one DNS label of letters, digits and
// hyphens (1–63 characters, no hyphen at either end).
func ValidLabel(s string) bool { return isLabel(s) }
