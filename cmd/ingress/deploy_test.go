package main

import (
	"bytes"
	"errors"
	"io"
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
					Args           []string     `yaml:"args"`
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
	if !strings.HasSuffix(cfg.Admin.Address, ":9090") || containerPorts["admin"] != 9090 {
		t.Errorf("admin address %s, container port %d", cfg.Admin.Address, containerPorts["admin"])
	}
	for _, l := range cfg.Ingress.Listeners {
		if !strings.HasSuffix(l.Address, ":"+strconv.Itoa(containerPorts[l.Service])) {
			t.Errorf("listener %s on %s, container port %d", l.Service, l.Address, containerPorts[l.Service])
		}
	}
}
