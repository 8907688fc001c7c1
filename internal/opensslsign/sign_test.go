package opensslsign_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"testing"

	"github.com/neo4j/private-ingress/internal/opensslsign"
)

// TestSignaturesVerify: what OpenSSL signs, Go's verifier accepts, for the
// paddings and hashes TLS asks for.
func TestSignaturesVerify(t *testing.T) {
	if !opensslsign.Available {
		t.Skip("built without -tags openssl")
	}
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	s, err := opensslsign.New(key)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("a TLS handshake transcript")
	d256, d384 := sha256.Sum256(msg), sha512.Sum384(msg)
	for _, tc := range []struct {
		name   string
		digest []byte
		opts   crypto.SignerOpts
	}{
		{"PSS SHA-256 (TLS 1.3)", d256[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}},
		{"PSS SHA-384", d384[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA384}},
		{"PKCS#1 v1.5 SHA-256 (TLS 1.2)", d256[:], crypto.SHA256},
	} {
		sig, err := s.Sign(rand.Reader, tc.digest, tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if pss, ok := tc.opts.(*rsa.PSSOptions); ok {
			err = rsa.VerifyPSS(&key.PublicKey, pss.Hash, tc.digest, sig, pss)
		} else {
			err = rsa.VerifyPKCS1v15(&key.PublicKey, tc.opts.HashFunc(), tc.digest, sig)
		}
		if err != nil {
			t.Errorf("%s: Go does not verify OpenSSL's signature: %v", tc.name, err)
		}
	}
}

// TestECDSASignaturesVerify: OpenSSL's ECDSA signatures are the DER that
// Go's verifier (and so any TLS client) accepts.
func TestECDSASignaturesVerify(t *testing.T) {
	if !opensslsign.Available {
		t.Skip("built without -tags openssl")
	}
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		key, _ := ecdsa.GenerateKey(curve, rand.Reader)
		s, err := opensslsign.New(key)
		if err != nil {
			t.Fatal(err)
		}
		if !key.PublicKey.Equal(s.Public()) {
			t.Errorf("%s: Public() is not the key's", curve.Params().Name)
		}
		d := sha256.Sum256([]byte("a TLS handshake transcript"))
		sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(&key.PublicKey, d[:], sig) {
			t.Errorf("%s: Go does not verify OpenSSL's signature", curve.Params().Name)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	d := sha256.Sum256([]byte("x"))
	opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	b.Run("go", func(b *testing.B) {
		for b.Loop() {
			key.Sign(rand.Reader, d[:], opts)
		}
	})
	if !opensslsign.Available {
		return
	}
	s, _ := opensslsign.New(key)
	b.Run("openssl", func(b *testing.B) {
		for b.Loop() {
			s.Sign(rand.Reader, d[:], opts)
		}
	})
}

func BenchmarkSignECDSA(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256([]byte("x"))
	b.Run("go", func(b *testing.B) {
		for b.Loop() {
			key.Sign(rand.Reader, d[:], crypto.SHA256)
		}
	})
	if !opensslsign.Available {
		return
	}
	s, _ := opensslsign.New(key)
	b.Run("openssl", func(b *testing.B) {
		for b.Loop() {
			s.Sign(rand.Reader, d[:], crypto.SHA256)
		}
	})
}
