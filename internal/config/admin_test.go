package config

import (
	"strings"
	"testing"
)

// TestAdminAddressFromEnvironment: ${POD_IP}:9090 binds the pod's own
// address (Kubernetes' downward API); an unset variable is an error, not
// an empty host that would bind every address.
func TestAdminAddressFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TEST_POD_IP", "10.1.2.3")
	if got := mustParse(t, dir, minimalConfig+"admin: {address: \"${TEST_POD_IP}:9090\"}\n").Admin.Address; got != "10.1.2.3:9090" {
		t.Errorf("admin.address = %q, want 10.1.2.3:9090", got)
	}
	_, err := Parse(dir+"/ingress.yaml", []byte(minimalConfig+"admin: {address: \"${TEST_UNSET_IP}:9090\"}\n"))
	if err == nil || !strings.Contains(err.Error(), "ingress.yaml:3: admin.address names ${TEST_UNSET_IP}, which is not set") {
		t.Errorf("unset variable: %v", err)
	}
	if got := mustParse(t, dir, minimalConfig+"admin: {pprof: true}\n").Admin; got.Address != "127.0.0.1:9090" || !got.Pprof {
		t.Errorf("admin = %+v", got)
	}
}
