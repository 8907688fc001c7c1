//go:build !(openssl && cgo)

package opensslsign

import (
	"crypto"
	"errors"
	"io"
)

// Available reports whether this build signs through OpenSSL.
const Available = false

// Signer is not available in this build.
type Signer struct{}

// New reports that this build has no OpenSSL (build with -tags openssl).
func New(crypto.Signer) (*Signer, error) {
	return nil, errors.New("opensslsign: built without the openssl tag")
}

// Public implements crypto.Signer.
func (*Signer) Public() crypto.PublicKey { return nil }

// Sign implements crypto.Signer.
func (*Signer) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("opensslsign: built without the openssl tag")
}
