package main

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/neo4j/private-ingress/internal/config"
)

// deployPort is a port of a container or a Service in deploy/.
type deployPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	Port          int    `yaml:"port"`
	TargetPort    string `yaml:"targetPort"`
}

// deployProbe is a container's HTTP probe in deploy/.
type deployProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

// deployDoc is what the test reads of one document of deploy/ingress.yaml.
type deployDoc struct {
	Kind     string            `yaml:"kind"`
	Data     map[string]string `yaml:"data"`
	Metadata struct {
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec struct {
		Ports    []deployPort `yaml:"ports"`
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Containers                    []struct {
					Args []string `yaml:"args"`
					Env  []struct {
						Name      string `yaml:"name"`
						ValueFrom struct {
							FieldRef struct {
								FieldPath string `yaml:"fieldPath"`
							} `yaml:"fieldRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
					Resources struct {
						Limits struct {
							Memory string `yaml:"memory"`
						} `yaml:"limits"`
					} `yaml:"resources"`
					Ports          []deployPort `yaml:"ports"`
					ReadinessProbe deployProbe  `yaml:"readinessProbe"`
					LivenessProbe  deployProbe  `yaml:"livenessProbe"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// TestDeployManifests parses deploy/: the kinds are there, the config in
// the ConfigMap passes the same validation as ingress.yaml, and the probes,
// ports and load balancer agree with it.
func TestDeployManifests(t *testing.T) {
	t.Setenv("POD_IP", "10.1.2.3") // the downward API's, which the Deployment sets
	data, err := os.ReadFile("../../deploy/ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc deployDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	kinds := map[string]bool{}
	var cfg *config.Config
	var containerPorts map[string]int
	for {
		doc.Kind, doc.Data = "", nil
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("deploy/ingress.yaml: %v", err)
		}
		kinds[doc.Kind] = true
		switch doc.Kind {
		case "ConfigMap":
			path := filepath.Join(t.TempDir(), "ingress.yaml")
			if cfg, err = config.Parse(path, []byte(doc.Data["ingress.yaml"])); err != nil {
				t.Fatalf("the ConfigMap's ingress.yaml: %v", err)
			}
		case "Deployment":
			containerPorts = checkDeployment(t, &doc, cfg)
		case "Service":
			checkDeployService(t, &doc, containerPorts)
		}
	}
	for _, k := range []string{"ConfigMap", "Deployment", "Service"} {
		if !kinds[k] {
			t.Errorf("deploy/ingress.yaml has no %s", k)
		}
	}
	if cfg == nil {
		t.Fatal("no config")
	}
	checkDeployConfig(t, cfg, containerPorts)
}

// checkDeployment checks the Deployment's probes, arguments and grace
// period (against cfg's drain time, if the ConfigMap came first), and
// returns its container's ports by name.
func checkDeployment(t *testing.T, doc *deployDoc, cfg *config.Config) map[string]int {
	spec := doc.Spec.Template.Spec
	c := spec.Containers[0]
	containerPorts := map[string]int{}
	for _, p := range c.Ports {
		containerPorts[p.Name] = p.ContainerPort
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" ||
		c.ReadinessProbe.HTTPGet.Port != "admin" || c.LivenessProbe.HTTPGet.Port != "admin" {
		t.Errorf("probes %+v %+v, want /readyz and /healthz on the admin port", c.ReadinessProbe, c.LivenessProbe)
	}
	if strings.Join(c.Args, " ") != "serve -config /etc/ingress/ingress.yaml" {
		t.Errorf("container args %v", c.Args)
	}
	if len(c.Env) != 1 || c.Env[0].Name != "POD_IP" || c.Env[0].ValueFrom.FieldRef.FieldPath != "status.podIP" {
		t.Errorf("container env %+v, want POD_IP from status.podIP", c.Env)
	}
	if cfg != nil {
		// ~28 KiB per connection measured; 32 KiB with the process's own 256 MiB.
		need := int64(cfg.Ingress.Limits.MaxConnections)*32<<10 + 256<<20
		if limit := parseMemory(t, c.Resources.Limits.Memory); limit < need {
			t.Errorf("memory limit %s is below what limits.max_connections %d needs (~%d MiB)", c.Resources.Limits.Memory, cfg.Ingress.Limits.MaxConnections, need>>20)
		}
	}
	if cfg != nil {
		to := cfg.Ingress.Timeouts
		if to.ShutdownDelay <= 0 {
			t.Errorf("timeouts.shutdown_delay is not set: behind a load balancer, SIGTERM would refuse the connections it still sends")
		}
		if spec.TerminationGracePeriodSeconds <= int((to.ShutdownDelay + to.Drain).Seconds()) {
			t.Errorf("terminationGracePeriodSeconds %d does not leave the %v shutdown delay and the %v drain time",
				spec.TerminationGracePeriodSeconds, to.ShutdownDelay, to.Drain)
		}
	}
	return containerPorts
}

// checkDeployService checks that the Service's load balancer sends PROXY
// protocol and that its ports target the container's.
func checkDeployService(t *testing.T, doc *deployDoc, containerPorts map[string]int) {
	if doc.Metadata.Annotations["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"] != "*" {
		t.Error("the Service's load balancer does not send PROXY protocol")
	}
	for _, p := range doc.Spec.Ports {
		if containerPorts[p.TargetPort] != p.Port {
			t.Errorf("service port %s %d targets %q, which the container does not expose as %d", p.Name, p.Port, p.TargetPort, p.Port)
		}
	}
}

// checkDeployConfig checks the ConfigMap's config: a fleet sharing etcd,
// behind PROXY protocol, its addresses on the container's ports.
func checkDeployConfig(t *testing.T, cfg *config.Config, containerPorts map[string]int) {
	if cfg.Ingress.ProxyProtocol.Mode != "required" || cfg.Routes.Etcd == nil || !cfg.TLS.SessionTickets.Shared() ||
		!strings.HasPrefix(cfg.TLS.ACME.Storage, "etcd:") {
		t.Errorf("the fleet config must require PROXY and share routes, tickets and certificates through etcd: %+v", cfg)
	}
	if b := cfg.Ingress.Backend.TLS; !b.Enabled || b.CA == "" || b.ClientCert == "" {
		t.Errorf("backend.tls %+v: production encrypts the leg to the instances, with their CA and a client certificate", b)
	}
	if cfg.Admin.Address != "10.1.2.3:9090" || containerPorts["admin"] != 9090 {
		t.Errorf("admin address %s, container port %d: want the pod's own address (${POD_IP}:9090), not every address", cfg.Admin.Address, containerPorts["admin"])
	}
	for _, c := range cfg.Ingress.ProxyProtocol.TrustedCIDRs {
		if p, err := netip.ParsePrefix(c); err != nil || p.Bits() != p.Addr().BitLen() {
			t.Errorf("trusted_cidrs has %s: trust the load balancer's own addresses (/32), not a range other workloads share", c)
		}
	}
	for _, l := range cfg.Ingress.Listeners {
		if !strings.HasSuffix(l.Address, ":"+strconv.Itoa(containerPorts[l.Service])) {
			t.Errorf("listener %s on %s, container port %d", l.Service, l.Address, containerPorts[l.Service])
		}
	}
}

// parseMemory reads a Kubernetes memory quantity in Mi or Gi.
func parseMemory(t *testing.T, q string) int64 {
	t.Helper()
	for suffix, unit := range map[string]int64{"Gi": 1 << 30, "Mi": 1 << 20} {
		if n, ok := strings.CutSuffix(q, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err == nil {
				return v * unit
			}
		}
	}
	t.Fatalf("memory quantity %q: want <n>Mi or <n>Gi", q)
	return 0
}
