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

// TestDeployManifests parses deploy/: the kinds are there, the config in
// the ConfigMap passes the same validation as ingress.yaml, and the probes,
// ports and load balancer agree with it.
func TestDeployManifests(t *testing.T) {
	data, err := os.ReadFile("../../deploy/ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type port struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Port          int    `yaml:"port"`
		TargetPort    string `yaml:"targetPort"`
	}
	type probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
	}
	var doc struct {
		Kind     string            `yaml:"kind"`
		Data     map[string]string `yaml:"data"`
		Metadata struct {
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec struct {
			Ports    []port `yaml:"ports"`
			Template struct {
				Spec struct {
					TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
					Containers                    []struct {
						Args           []string `yaml:"args"`
						Ports          []port   `yaml:"ports"`
						ReadinessProbe probe    `yaml:"readinessProbe"`
						LivenessProbe  probe    `yaml:"livenessProbe"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
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
			spec := doc.Spec.Template.Spec
			c := spec.Containers[0]
			containerPorts = map[string]int{}
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
			if cfg != nil && spec.TerminationGracePeriodSeconds <= int(cfg.Ingress.Timeouts.Drain.Seconds()) {
				t.Errorf("terminationGracePeriodSeconds %d does not leave the %v drain time", spec.TerminationGracePeriodSeconds, cfg.Ingress.Timeouts.Drain)
			}
		case "Service":
			if doc.Metadata.Annotations["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"] != "*" {
				t.Error("the Service's load balancer does not send PROXY protocol")
			}
			for _, p := range doc.Spec.Ports {
				if containerPorts[p.TargetPort] != p.Port {
					t.Errorf("service port %s %d targets %q, which the container does not expose as %d", p.Name, p.Port, p.TargetPort, p.Port)
				}
			}
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
