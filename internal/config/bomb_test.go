package config

import (
	"errors"
	"fmt"
	"github.com/neo4j/private-ingress/internal/testenv/yamlbomb"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/private-ingress/internal/yamlutil"
)

// Alias bombs ("billion laughs") of 8-25 KB in ingress.yaml, and in the
// routes file `ingress check` reads: each is refused with the file and the
// line of the alias that blows up. The time taken is logged, not asserted.

var configBombs = []struct {
	name, doc string
	line      int
}{
	// listeners × alpn: every node one the key check and yaml.v3 visit.
	{"listeners of a long alpn", "orchestras: [\"0000\"]\nlisteners: [&l {service: bolt, address: \":7687\", alpn: [" + yamlbomb.List("h2", 1100) + "]}, " + yamlbomb.List("*l", 1100) + "]\n", 2},
	{"laughs in alpn", "orchestras: [\"0000\"]\nlisteners:\n- service: bolt\n  address: \":7687\"\n  alpn: " + yamlbomb.Laughs(100, 20, "h2") + "\n", 5},
	{"laughs in orchestras", "orchestras: " + yamlbomb.Laughs(100, 20, "\"0000\"") + "\n", 1},
	// Refused as a bomb before its unknown keys are looked at.
	{"a chain of unknown keys", "orchestras: [\"0000\"]\nlimits:\n" + func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "  a0: &a0 [%s]\n", yamlbomb.List("1", 80))
		for d := 1; d <= 40; d++ {
			fmt.Fprintf(&b, "  a%d: &a%d [%s]\n", d, d, yamlbomb.List(fmt.Sprintf("*a%d", d-1), 80))
		}
		return b.String()
	}(), 5},
}

func checkBomb(t *testing.T, file, doc string, line int, err error, took time.Duration) {
	t.Helper()
	t.Logf("%d bytes refused in %v", len(doc), took)
	if len(doc) < 8<<10 || len(doc) > 25<<10 {
		t.Errorf("the bomb is %d bytes, want 8-25 KB", len(doc))
	}
	var es yamlutil.Errors
	if !errors.As(err, &es) || len(es) != 1 {
		t.Fatalf("error %v, want one positioned error", err)
	}
	want := fmt.Sprintf("%s:%d: document expands to more than ", file, line)
	if msg := err.Error(); !strings.HasPrefix(msg, want) || !strings.HasSuffix(msg, " nodes through aliases (anchors/aliases used as a bomb?)") {
		t.Errorf("error %q, want %q...", msg, want)
	}
}

func TestParseRefusesAliasBombs(t *testing.T) {
	for _, b := range configBombs {
		t.Run(b.name, func(t *testing.T) {
			start := time.Now()
			cfg, err := Parse("ingress.yaml", []byte(b.doc))
			if cfg != nil {
				t.Error("a config and an error")
			}
			checkBomb(t, "ingress.yaml", b.doc, b.line, err, time.Since(start))
		})
	}
}

// TestCheckFileRefusesAliasBombs is `ingress check` on a bomb, in the
// config and in the routes file it names.
func TestCheckFileRefusesAliasBombs(t *testing.T) {
	fx := newCheckFixture(t)
	b := configBombs[0]
	path := fx.write(t, "ingress.yaml", b.doc)
	start := time.Now()
	_, _, err := CheckFile(path)
	checkBomb(t, path, b.doc, b.line, err, time.Since(start))

	routes := "instances:\n- &i {dbid: abcd1234, orch: \"0000\", backends: {bolt: &s [" + yamlbomb.List("h:1", 430) + "]"
	for j := range 430 {
		routes += fmt.Sprintf(", s%d: *s", j)
	}
	routes += "}}\n" + strings.Repeat("- *i\n", 430)
	routesPath := fx.write(t, "bomb-routes.yaml", routes)
	path = fx.write(t, "ingress.yaml", `orchestras: ["0000"]`+"\n"+checkCerts+"routes: {file: bomb-routes.yaml}\n")
	start = time.Now()
	_, _, err = CheckFile(path)
	t.Logf("%d bytes of routes refused in %v", len(routes), time.Since(start))
	if want := routesPath + ":2: document expands to more than "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("CheckFile error %v, want %q...", err, want)
	}
}

// TestParseKeepsModestAliases: a listener's alpn list anchored once and
// reused.
func TestParseKeepsModestAliases(t *testing.T) {
	cfg := mustParse(t, t.TempDir(), `orchestras: ["0000"]
tls: {certificates: [{cert: a.crt, key: a.key}]}
listeners:
  - {service: https, address: ":443", alpn: &web ["h2", "http/1.1"]}
  - {service: http, address: ":7474", alpn: *web}
  - &bolt {service: bolt, address: ":7687"}
`)
	if len(cfg.Ingress.Listeners) != 3 || strings.Join(cfg.Ingress.Listeners[1].ALPN, ",") != "h2,http/1.1" {
		t.Errorf("listeners: %+v", cfg.Ingress.Listeners)
	}
}
