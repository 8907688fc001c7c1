package logging

import (
	"bytes"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
		want    string // in the output of an info line, when it is written
	}{
		{name: "defaults", cfg: Config{}, want: `"msg":"hello"`},
		{name: "console", cfg: Config{Format: "console"}, want: "\tinfo\thello"},
		{name: "warn hides info", cfg: Config{Level: "warn"}, want: ""},
		{name: "bad level", cfg: Config{Level: "loud"}, wantErr: `log.level "loud" must be`},
		{name: "bad format", cfg: Config{Format: "xml"}, wantErr: `log.format "xml" must be`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			logger, err := New(tc.cfg, &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New(%+v) = %v, want an error with %q", tc.cfg, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			logger.Info("hello")
			if got := out.String(); tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("output %q, want it to contain %q", got, tc.want)
			}
		})
	}
}
