// Package opensslsign signs with RSA keys through OpenSSL's libcrypto, which
// does RSA-2048 private-key operations about twice as fast as Go's pure
// implementation on the machines measured: a full TLS handshake with an RSA
// leaf is one such signature. It is built only with the openssl tag (and
// cgo); without it, New reports that it is not available and the pure-Go
// key is used.
package opensslsign
