package dnsstub

import "testing"

// TestDialable: a stub bound to a wildcard address is queried on loopback.
func TestDialable(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.2:53": "127.0.0.2:53",
		"0.0.0.0:53":   "127.0.0.1:53",
		"[::]:5353":    "127.0.0.1:5353",
		":53":          "127.0.0.1:53",
		"[::1]:53":     "[::1]:53",
		"not-an-addr":  "not-an-addr",
	} {
		if got := dialable(addr); got != want {
			t.Errorf("dialable(%q) = %q, want %q", addr, got, want)
		}
	}
}
