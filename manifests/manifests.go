// Package manifests holds tmbox's own YAML: the Istio profile it installs
// the compiled-in Istio with and the kind cluster config it creates local
// clusters from. Upstream manifests never live here: the catalog pins them
// and sources fetch them.
package manifests

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"github.com/tmbox/tmbox/catalog"
)

//go:embed istio-knative.yaml
var istioKnativeProfile []byte

// IstioKnativeProfile returns tmbox's IstioOperator overlay for Knative.
func IstioKnativeProfile() []byte { return bytes.Clone(istioKnativeProfile) }

// Ingress gateway node ports the kind config maps host ports onto; the
// installer pins the Istio ingress gateway Service to them on kind.
const (
	IngressHTTPNodePort  = 31080
	IngressHTTPSNodePort = 31443
)

// Limits and defaults of KindConfig.
const (
	// KindMaxWorkers is the largest KindConfig.Workers accepted.
	KindMaxWorkers = 20
	// KindMaxNameLength is the longest cluster name accepted: kind names
	// the control-plane node "<name>-control-plane", which has to stay a
	// DNS label (63 characters).
	KindMaxNameLength = 63 - len("-control-plane")
	// KindDefaultListenAddress is the host address ports are mapped on
	// when KindConfig.ListenAddress is empty.
	KindDefaultListenAddress = "127.0.0.1"
	// KindDefaultHTTPPort and KindDefaultHTTPSPort are the host ports
	// mapped to the ingress node ports when the KindConfig port is 0.
	KindDefaultHTTPPort  = 80
	KindDefaultHTTPSPort = 443
	// KindNoPort in KindConfig.HTTPPort or HTTPSPort leaves that ingress
	// node port unmapped.
	KindNoPort = -1
	// KindContainerdCertsDir is where containerd looks for
	// <registry>/hosts.toml inside every kind node.
	KindContainerdCertsDir = "/etc/containerd/certs.d"
)

// The controller-manager's client rate limit on the kind clusters tmbox
// creates (its --kube-api-qps and --kube-api-burst), instead of
// Kubernetes' 20 and 30. The controller-manager writes every step of a
// rolling update (ReplicaSets, pods, their status and events) through it,
// so on the default a tmbox upgrade spends most of a hop waiting on it,
// and so does a burst of Knative scale-ups. The values are OpenShift's.
const (
	KindControllerManagerQPS   = 150
	KindControllerManagerBurst = 300
)

// KindConfig are the inputs of the generated kind cluster config.
type KindConfig struct {
	// Name is the cluster name: a lower-case DNS label of at most
	// KindMaxNameLength characters.
	Name string
	// Workers is the number of worker nodes besides the control plane
	// (0..KindMaxWorkers).
	Workers int
	// ListenAddress is the host IP address ports are mapped on (default
	// KindDefaultListenAddress); the API server listens there too.
	ListenAddress string
	// HTTPPort and HTTPSPort are the host ports mapped to
	// IngressHTTPNodePort and IngressHTTPSNodePort: 0 means the default
	// (80, 443), KindNoPort (-1) means do not map.
	HTTPPort, HTTPSPort int
	// APIServerPort is the host port of the API server; 0 lets kind pick
	// a random one.
	APIServerPort int
	// RegistryMirror, when set (air gap), makes containerd pull every
	// listed registry through the mirror.
	RegistryMirror *RegistryMirror
}

// RegistryMirror points containerd at a local registry.
type RegistryMirror struct {
	// Endpoint is the mirror's URL, e.g. "http://tmbox-registry:5000".
	Endpoint string
	// Registries are the upstream registries it mirrors, e.g. docker.io,
	// gcr.io, quay.io, registry.k8s.io, ghcr.io.
	Registries []string
	// HostsDir is the absolute host directory mounted read-only at
	// KindContainerdCertsDir in every node: it holds <registry>/hosts.toml,
	// i.e. it is the "certs.d" directory KindRegistryHosts' paths start
	// with. Only RenderKindConfig needs it.
	HostsDir string
	// CA, when set, is the PEM CA bundle containerd trusts for an https
	// Endpoint (a registry with a private CA): KindRegistryHosts writes
	// it as <registry>/ca.crt beside each hosts.toml, which names it.
	CA []byte
}

//go:embed kind-config.yaml.tmpl
var kindConfigTemplate string

// kindView is the validated, defaulted KindConfig the template renders.
type kindView struct {
	Name          string
	ListenAddress string
	APIServerPort int
	PortMappings  []kindPortMapping
	Workers       int
	Mirror        *RegistryMirror
	CertsDir      string
	// ControllerManagerQPS and ControllerManagerBurst are
	// KindControllerManagerQPS and KindControllerManagerBurst.
	ControllerManagerQPS, ControllerManagerBurst int
}

type kindPortMapping struct {
	ContainerPort, HostPort int
	ListenAddress           string
}

// isDNSLabel reports whether s is a lower-case DNS label (RFC 1123): the
// subset of kind's `^[a-z0-9.-]+$` that is safe in node host names.
func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// isRegistryHost reports whether s is a registry host as containerd names
// its hosts directory: lower-case DNS labels joined by dots, with an
// optional :port.
func isRegistryHost(s string) bool {
	host, port, hasPort := strings.Cut(s, ":")
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return false
		}
	}
	if host == "" || len(host) > 253 {
		return false
	}
	for _, label := range strings.Split(host, ".") {
		if !isDNSLabel(label) {
			return false
		}
	}
	return true
}

// RenderKindConfig returns the kind config (kind.x-k8s.io/v1alpha4
// Cluster) for c: a control-plane node labelled ingress-ready=true that
// maps the host's HTTP(S) ports onto the ingress node ports, c.Workers
// workers, the API server on c.ListenAddress, the controller-manager's
// client limited to KindControllerManagerQPS, and, with a registry mirror,
// containerd reading hosts.toml files from the mounted c.RegistryMirror.HostsDir.
// It validates c first and reports every problem in one error.
func RenderKindConfig(c KindConfig) ([]byte, error) {
	v, err := c.view()
	if err != nil {
		return nil, err
	}
	t, err := template.New("kind-config").
		Option("missingkey=error").
		Funcs(template.FuncMap{"quote": yamlQuote}).
		Parse(kindConfigTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse kind config template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		return nil, fmt.Errorf("render kind config %s: %w", c.Name, err)
	}
	return b.Bytes(), nil
}

// view validates c and resolves its defaults.
func (c KindConfig) view() (*kindView, error) {
	var errs []error
	switch {
	case c.Name == "":
		errs = append(errs, errors.New("cluster name is empty"))
	case len(c.Name) > KindMaxNameLength:
		errs = append(errs, fmt.Errorf("cluster name %q is longer than %d characters", catalog.ShortPath(c.Name), KindMaxNameLength))
	case !isDNSLabel(c.Name):
		errs = append(errs, fmt.Errorf("cluster name %q is not a lower-case DNS label (a-z, 0-9 and '-', starting and ending with a letter or digit)", catalog.ShortPath(c.Name)))
	}
	if c.Workers < 0 || c.Workers > KindMaxWorkers {
		errs = append(errs, fmt.Errorf("workers %d out of range 0..%d", c.Workers, KindMaxWorkers))
	}
	listen := c.ListenAddress
	if listen == "" {
		listen = KindDefaultListenAddress
	}
	if addr, err := netip.ParseAddr(listen); err != nil || addr.Zone() != "" {
		errs = append(errs, fmt.Errorf("listen address %s is not an IP address", catalog.QuoteShort(c.ListenAddress)))
	}
	httpPort, err := hostPort("HTTP port", c.HTTPPort, KindDefaultHTTPPort)
	errs = appendErr(errs, err)
	httpsPort, err := hostPort("HTTPS port", c.HTTPSPort, KindDefaultHTTPSPort)
	errs = appendErr(errs, err)
	if c.APIServerPort != 0 {
		errs = appendErr(errs, checkPort("API server port", c.APIServerPort))
	}
	used := map[int]string{}
	for _, p := range []struct {
		name string
		port int
	}{{"HTTP port", httpPort}, {"HTTPS port", httpsPort}, {"API server port", c.APIServerPort}} {
		if p.port <= 0 {
			continue
		}
		if other, ok := used[p.port]; ok {
			errs = append(errs, fmt.Errorf("%s and %s are both %d", other, p.name, p.port))
			continue
		}
		used[p.port] = p.name
	}
	if c.RegistryMirror != nil {
		errs = appendErr(errs, c.RegistryMirror.validate())
		if d := c.RegistryMirror.HostsDir; d == "" {
			errs = append(errs, errors.New("registry mirror: hosts directory is empty"))
		} else if !filepath.IsAbs(d) {
			errs = append(errs, fmt.Errorf("registry mirror: hosts directory %q is not an absolute path", d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid kind config: %w", err)
	}

	v := &kindView{
		Name:          c.Name,
		ListenAddress: listen,
		APIServerPort: c.APIServerPort,
		Workers:       c.Workers,
		Mirror:        c.RegistryMirror,
		CertsDir:      KindContainerdCertsDir,

		ControllerManagerQPS:   KindControllerManagerQPS,
		ControllerManagerBurst: KindControllerManagerBurst,
	}
	if httpPort > 0 {
		v.PortMappings = append(v.PortMappings, kindPortMapping{IngressHTTPNodePort, httpPort, listen})
	}
	if httpsPort > 0 {
		v.PortMappings = append(v.PortMappings, kindPortMapping{IngressHTTPSNodePort, httpsPort, listen})
	}
	return v, nil
}

// hostPort resolves an ingress host port: 0 is def, KindNoPort is 0 (not
// mapped).
func hostPort(name string, port, def int) (int, error) {
	switch port {
	case 0:
		return def, nil
	case KindNoPort:
		return 0, nil
	}
	return port, checkPort(name, port)
}

func checkPort(name string, port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("%s %d out of range 1..65535", name, port)
	}
	return nil
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

// validate checks the endpoint and registries (not HostsDir, which only
// rendering needs).
func (m RegistryMirror) validate() error {
	var errs []error
	if u, err := url.Parse(m.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("registry mirror: endpoint %q is not an http(s)://host[:port] URL", m.Endpoint))
	}
	if len(m.Registries) == 0 {
		errs = append(errs, errors.New("registry mirror: no registries to mirror"))
	}
	seen := map[string]bool{}
	for _, r := range m.Registries {
		switch {
		case !isRegistryHost(r):
			errs = append(errs, fmt.Errorf("registry mirror: registry %q is not a lower-case host[:port]", r))
		case seen[r]:
			errs = append(errs, fmt.Errorf("registry mirror: registry %q listed twice", r))
		}
		seen[r] = true
	}
	if len(m.CA) > 0 {
		if u, err := url.Parse(m.Endpoint); err == nil && u.Scheme != "https" {
			errs = append(errs, fmt.Errorf("registry mirror: a CA is for an https endpoint, not %q", m.Endpoint))
		}
		if !hasCertificate(m.CA) {
			errs = append(errs, errors.New("registry mirror: the CA holds no PEM CERTIFICATE block"))
		}
	}
	return errors.Join(errs...)
}

// hasCertificate reports whether data holds a PEM CERTIFICATE block.
func hasCertificate(data []byte) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if b.Type == "CERTIFICATE" {
			return true
		}
	}
}

// KindRegistryHosts returns, for each mirrored registry, the relative path
// "certs.d/<registry>/hosts.toml" and its content: a containerd hosts.toml
// whose server is the upstream registry and whose one host is m.Endpoint
// with the pull and resolve capabilities. With m.CA, each registry's
// directory also gets "ca.crt", which the host's ca names by its path in
// the node (under KindContainerdCertsDir). Write the files under the
// parent of m.HostsDir (m.HostsDir is the "certs.d" directory).
func KindRegistryHosts(m RegistryMirror) (map[string][]byte, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("invalid registry mirror: %w", err)
	}
	out := make(map[string][]byte, len(m.Registries))
	for _, r := range m.Registries {
		var b strings.Builder
		fmt.Fprintf(&b, "# Generated by tmbox: pull %s through the local mirror.\n", r)
		fmt.Fprintf(&b, "server = %s\n\n", tomlQuote(upstreamServer(r)))
		fmt.Fprintf(&b, "[host.%s]\n", tomlQuote(strings.TrimSuffix(m.Endpoint, "/")))
		b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
		if len(m.CA) > 0 {
			fmt.Fprintf(&b, "  ca = %s\n", tomlQuote(path.Join(KindContainerdCertsDir, r, "ca.crt")))
			out[path.Join("certs.d", r, "ca.crt")] = bytes.Clone(m.CA)
		}
		out[path.Join("certs.d", r, "hosts.toml")] = []byte(b.String())
	}
	return out, nil
}

// upstreamServer is the URL containerd falls back to for registry r;
// Docker Hub's API is not served on docker.io itself.
func upstreamServer(r string) string {
	if r == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + r
}

// yamlQuote returns s as a double-quoted scalar: a JSON string is valid
// YAML, whatever s holds.
func yamlQuote(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

// tomlQuote returns s as a TOML basic string; JSON's escapes (\" \\ \n
// \uXXXX ...) are all valid TOML.
func tomlQuote(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}
