//go:build openssl && cgo

package opensslsign

/*
#cgo LDFLAGS: -lcrypto
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

static EVP_PKEY *load_key(const unsigned char *der, long len) {
	return d2i_AutoPrivateKey(NULL, &der, len);
}

static const EVP_MD *md_for(int bits) {
	switch (bits) {
	case 256: return EVP_sha256();
	case 384: return EVP_sha384();
	case 512: return EVP_sha512();
	case 1:   return EVP_md5_sha1();
	}
	return NULL;
}

// sign_digest signs an already hashed message: PKCS#1 v1.5, or PSS with
// salt length saltlen (-1: the digest's length).
static int sign_digest(EVP_PKEY *pkey, int pss, int md_bits, int saltlen,
		const unsigned char *digest, size_t dlen, unsigned char *sig, size_t *siglen) {
	const EVP_MD *md = md_for(md_bits);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);
	if (ctx == NULL || md == NULL) {
		EVP_PKEY_CTX_free(ctx);
		return 0;
	}
	int ok = EVP_PKEY_sign_init(ctx) > 0
		&& EVP_PKEY_CTX_set_rsa_padding(ctx, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) > 0
		&& EVP_PKEY_CTX_set_signature_md(ctx, md) > 0
		&& (!pss || EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, saltlen) > 0)
		&& EVP_PKEY_sign(ctx, sig, siglen, digest, dlen) > 0;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

// sign_ecdsa signs an already hashed message; the signature is DER, as Go's
// crypto/ecdsa makes and crypto/tls sends.
static int sign_ecdsa(EVP_PKEY *pkey, const unsigned char *digest, size_t dlen,
		unsigned char *sig, size_t *siglen) {
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);
	if (ctx == NULL) {
		return 0;
	}
	int ok = EVP_PKEY_sign_init(ctx) > 0 && EVP_PKEY_sign(ctx, sig, siglen, digest, dlen) > 0;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}
*/
import "C"

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"runtime"
	"unsafe"
)

// Available reports whether this build signs through OpenSSL.
const Available = true

// Signer is an RSA or ECDSA private key held by OpenSSL. It is a
// crypto.Signer, as crypto/tls wants of a certificate's PrivateKey.
type Signer struct {
	pkey  *C.EVP_PKEY
	pub   crypto.PublicKey
	size  int // the longest signature
	ecdsa bool
}

// New copies key (an *rsa.PrivateKey or *ecdsa.PrivateKey) into OpenSSL.
func New(key crypto.Signer) (*Signer, error) {
	s := &Signer{pub: key.Public()}
	switch k := key.(type) {
	case *rsa.PrivateKey:
	case *ecdsa.PrivateKey:
		s.ecdsa = true
	default:
		return nil, fmt.Errorf("opensslsign: %T keys are not supported", k)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("opensslsign: %w", err)
	}
	s.pkey = C.load_key((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)))
	if s.pkey == nil {
		return nil, errors.New("opensslsign: OpenSSL refused the key")
	}
	s.size = int(C.EVP_PKEY_get_size(s.pkey))
	runtime.SetFinalizer(s, func(s *Signer) { C.EVP_PKEY_free(s.pkey) })
	return s, nil
}

// Public implements crypto.Signer.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// Sign implements crypto.Signer: digest is the hash of the message, opts
// says which hash, and for RSA *rsa.PSSOptions asks for PSS (TLS 1.3
// always does).
func (s *Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if len(digest) == 0 {
		return nil, errors.New("opensslsign: empty digest")
	}
	if s.ecdsa {
		sig := make([]byte, s.size)
		n := C.size_t(len(sig))
		ok := C.sign_ecdsa(s.pkey, (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
			(*C.uchar)(unsafe.Pointer(&sig[0])), &n)
		runtime.KeepAlive(s)
		if ok == 0 {
			return nil, errors.New("opensslsign: OpenSSL could not sign")
		}
		return sig[:n], nil
	}
	var bits C.int
	switch opts.HashFunc() {
	case crypto.SHA256:
		bits = 256
	case crypto.SHA384:
		bits = 384
	case crypto.SHA512:
		bits = 512
	case crypto.MD5SHA1:
		bits = 1
	default:
		return nil, fmt.Errorf("opensslsign: hash %v is not supported", opts.HashFunc())
	}
	pss, saltlen := C.int(0), C.int(0)
	if o, ok := opts.(*rsa.PSSOptions); ok {
		pss = 1
		switch o.SaltLength {
		case rsa.PSSSaltLengthEqualsHash:
			saltlen = -1 // RSA_PSS_SALTLEN_DIGEST
		case rsa.PSSSaltLengthAuto:
			saltlen = -2 // RSA_PSS_SALTLEN_MAX
		default:
			saltlen = C.int(o.SaltLength)
		}
	}
	sig := make([]byte, s.size)
	n := C.size_t(len(sig))
	ok := C.sign_digest(s.pkey, pss, bits, saltlen,
		(*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), &n)
	runtime.KeepAlive(s)
	if ok == 0 {
		return nil, errors.New("opensslsign: OpenSSL could not sign")
	}
	return sig[:n], nil
}
