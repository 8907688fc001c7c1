package config

import (
	"strings"
	"testing"
	"time"
)

func TestShutdownDelay(t *testing.T) {
	dir := t.TempDir()
	if got := mustParse(t, dir, minimalConfig).Ingress.Timeouts.ShutdownDelay; got != 0 {
		t.Errorf("default shutdown_delay = %v, want 0", got)
	}
	if got := mustParse(t, dir, minimalConfig+"timeouts: {shutdown_delay: 15s}\n").Ingress.Timeouts.ShutdownDelay; got != 15*time.Second {
		t.Errorf("shutdown_delay = %v, want 15s", got)
	}
	_, err := Parse(dir+"/ingress.yaml", []byte(minimalConfig+"timeouts: {shutdown_delay: -1s}\n"))
	if err == nil || !strings.Contains(err.Error(), "ingress.yaml:3: timeouts.shutdown_delay must not be negative") {
		t.Errorf("negative shutdown_delay: %v", err)
	}
}

func TestPark(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		doc  string
		want time.Duration
	}{
		{minimalConfig, 2 * time.Second},
		{minimalConfig + "timeouts: {park: 0s}\n", 0}, // never park
		{minimalConfig + "timeouts: {park: 100ms}\n", 100 * time.Millisecond},
	} {
		if got := mustParse(t, dir, c.doc).Ingress.Timeouts.Park; got != c.want {
			t.Errorf("%q: park = %v, want %v", c.doc, got, c.want)
		}
	}
	_, err := Parse(dir+"/ingress.yaml", []byte(minimalConfig+"timeouts: {park: -1s}\n"))
	if err == nil || !strings.Contains(err.Error(), "ingress.yaml:3: timeouts.park must not be negative") {
		t.Errorf("negative park: %v", err)
	}
}
