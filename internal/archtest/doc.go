// Package archtest holds tests of the module's shape: which package may
// import which, and that every package documents itself once. It has no
// code of its own.
package archtest
