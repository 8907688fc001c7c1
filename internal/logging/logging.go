// Package logging owns the log section of ingress.yaml: its defaults, its
// rules, and the zap logger built from it. internal/config validates the
// section through it and cmd builds the logger with it, so a level or a
// format is known in one place.
package logging

import (
	"fmt"
	"io"
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config is the log section.
type Config struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | console
}

// The defaults, and what each setting accepts.
const (
	DefaultLevel  = "info"
	DefaultFormat = "json"
)

var (
	levels  = []string{"debug", "info", "warn", "error"}
	formats = []string{"json", "console"}
)

// WithDefaults fills what c leaves empty.
func (c Config) WithDefaults() Config {
	if c.Level == "" {
		c.Level = DefaultLevel
	}
	if c.Format == "" {
		c.Format = DefaultFormat
	}
	return c
}

// CheckLevel refuses a level the logger does not have.
func (c Config) CheckLevel() error {
	if !slices.Contains(levels, c.Level) {
		return fmt.Errorf("log.level %q must be debug, info, warn or error", c.Level)
	}
	return nil
}

// CheckFormat refuses a format the logger cannot write.
func (c Config) CheckFormat() error {
	if !slices.Contains(formats, c.Format) {
		return fmt.Errorf("log.format %q must be json or console", c.Format)
	}
	return nil
}

// New builds the logger c describes, writing to out; empty settings take
// their defaults.
func New(c Config, out io.Writer) (*zap.Logger, error) {
	c = c.WithDefaults()
	if err := c.CheckLevel(); err != nil {
		return nil, err
	}
	if err := c.CheckFormat(); err != nil {
		return nil, err
	}
	level, _ := zapcore.ParseLevel(c.Level) // every level CheckLevel accepts parses
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	enc := zapcore.NewJSONEncoder(encCfg)
	if c.Format == "console" {
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(out)), level)), nil
}
