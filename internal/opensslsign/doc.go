// Package opensslsign signs with RSA and ECDSA keys through OpenSSL's
// libcrypto, which does RSA-2048 private-key operations about three times
// as fast as Go's pure implementation on the machines measured, and ECDSA
// P-256 ones twice as fast: a full TLS handshake is one such signature. It is built only with the openssl tag (and
// cgo); without it, New reports that it is not available and the pure-Go
// key is used.
package opensslsign
