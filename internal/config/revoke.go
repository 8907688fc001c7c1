package config

import (
	"time"

	"github.com/neo4j/private-ingress/ingress"
	"github.com/neo4j/private-ingress/internal/yamlutil"
)

// revokeNever is routes.revoke_after's "never", the one negative duration
// it takes.
const revokeNever = -time.Second

// revokeAfter applies routes.revoke_after's default and refuses the
// negative durations other than -1s.
func (v *validator) revokeAfter(d *time.Duration) {
	node := yamlutil.Value(v.at("routes"), "revoke_after")
	switch {
	case absent(node):
		*d = ingress.DefaultRevokeAfter
	case *d < 0 && *d != revokeNever:
		v.Addf(node, "routes.revoke_after %s: give 0s (close at once), a positive duration, or -1s (never)", *d)
	}
}

// ingressRevokeAfter is routes.revoke_after as ingress.Config takes it,
// where zero is the default.
func ingressRevokeAfter(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return ingress.RevokeAtOnce
	case d < 0:
		return ingress.RevokeNever
	}
	return d
}
