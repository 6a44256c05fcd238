// Package settings holds the appliance's platform settings — Knative's
// domain, the gateway's certificate, registry credentials, high
// availability, ConfigMap keys and workload overrides — and applies them
// to a release's rendered objects before they are applied, the same way
// for every release, so the apply hash covers them and an unchanged
// setting writes nothing.
//
// Settings are what the user asked for (the InstallConfig's platform:
// section, flags, env vars): Decode reads them strictly from the config
// file, Validate checks them on their own; Load reads the files they name
// into a Resolved value; Check refuses settings a release cannot honour;
// Apply transforms the release's objects.
package settings

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Settings are the platform settings of an InstallConfig (platform:). The
// zero value changes nothing.
type Settings struct {
	// Domain is Knative's domain (config-domain): functions are reachable
	// as {name}.{namespace}.{Domain}.
	Domain string `json:"domain,omitempty" yaml:"domain,omitempty"`
	// TLS gives the Knative ingress gateway a certificate.
	TLS *TLS `json:"tls,omitempty" yaml:"tls,omitempty"`
	// Registry holds credentials and trust for a private registry.
	Registry *Registry `json:"registry,omitempty" yaml:"registry,omitempty"`
	// HighAvailability runs the control planes with more replicas.
	HighAvailability *HighAvailability `json:"highAvailability,omitempty" yaml:"highAvailability,omitempty"`
	// Config sets data keys of the release's Knative ConfigMaps: ConfigMap
	// ("config-autoscaler", or "knative-eventing/config-features" where a
	// name is in more than one namespace) → key → value.
	Config map[string]map[string]Value `json:"config,omitempty" yaml:"config,omitempty"`
	// Workloads overrides the pod templates of the release's Deployments
	// and StatefulSets, by "namespace/name".
	Workloads map[string]Workload `json:"workloads,omitempty" yaml:"workloads,omitempty"`
	// Gateway shapes the Istio ingress gateway's Service.
	Gateway *Gateway `json:"gateway,omitempty" yaml:"gateway,omitempty"`
}

// TLS is the ingress gateway's certificate, from PEM files.
type TLS struct {
	// CertFile is a PEM certificate (chain).
	CertFile string `json:"certFile,omitempty" yaml:"certFile,omitempty"`
	// KeyFile is the PEM private key of CertFile's certificate.
	KeyFile string `json:"keyFile,omitempty" yaml:"keyFile,omitempty"`
	// RedirectHTTP makes the HTTP server redirect to HTTPS.
	RedirectHTTP bool `json:"redirectHTTP,omitempty" yaml:"redirectHTTP,omitempty"`
}

// Registry holds what pods and Knative need to use a private registry.
type Registry struct {
	// PullSecret is a Docker config JSON file (~/.docker/config.json
	// shape): an image pull Secret in every namespace tmbox installs into,
	// referenced by every pod template of the release.
	PullSecret string `json:"pullSecret,omitempty" yaml:"pullSecret,omitempty"`
	// CAFile is a PEM bundle Knative Serving's controller trusts when it
	// resolves tags.
	CAFile string `json:"caFile,omitempty" yaml:"caFile,omitempty"`
	// SkipTagResolving lists registries the controller must not contact
	// (config-deployment registries-skipping-tag-resolving).
	SkipTagResolving []string `json:"skipTagResolving,omitempty" yaml:"skipTagResolving,omitempty"`
}

// HighAvailability sets the replicas of the control-plane Deployments
// Knative's high-availability guide names, and of istiod and the gateway.
type HighAvailability struct {
	// Replicas is at least 1.
	Replicas int32 `json:"replicas" yaml:"replicas"`
}

// Workload overrides one Deployment's or StatefulSet's pod template.
type Workload struct {
	// Replicas, when set, is at least 0.
	Replicas *int32 `json:"replicas,omitempty" yaml:"replicas,omitempty"`
	// Containers overrides containers by name.
	Containers map[string]Container `json:"containers,omitempty" yaml:"containers,omitempty"`
	// NodeSelector replaces the pod template's node selector.
	NodeSelector map[string]string `json:"nodeSelector,omitempty" yaml:"nodeSelector,omitempty"`
	// Tolerations replaces the pod template's tolerations (the shape of
	// core/v1 Toleration).
	Tolerations []map[string]any `json:"tolerations,omitempty" yaml:"tolerations,omitempty"`
	// Affinity replaces the pod template's affinity (core/v1 Affinity).
	Affinity map[string]any `json:"affinity,omitempty" yaml:"affinity,omitempty"`
	// Annotations are added to the pod template's.
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
	// Labels are added to the pod template's (not to the workload's
	// selector: a label the selector matches on cannot be changed).
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
}

// Container overrides one container of a pod template.
type Container struct {
	// Resources replaces the container's resources (core/v1
	// ResourceRequirements: requests, limits).
	Resources map[string]map[string]string `json:"resources,omitempty" yaml:"resources,omitempty"`
	// Env sets environment variables (added, or replacing one of the
	// same name).
	Env map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
}

// Gateway shapes the istio-system/istio-ingressgateway Service.
type Gateway struct {
	// Type is LoadBalancer, NodePort or ClusterIP ("" keeps the default:
	// NodePort on kind, LoadBalancer elsewhere).
	Type string `json:"type,omitempty" yaml:"type,omitempty"`
	// LoadBalancerIP asks the cloud for this address (type LoadBalancer).
	LoadBalancerIP string `json:"loadBalancerIP,omitempty" yaml:"loadBalancerIP,omitempty"`
	// Annotations are added to the Service's.
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
}

// Value is a ConfigMap value: a string, number or boolean in YAML, stored
// as its text. Lists and mappings are refused.
type Value string

// UnmarshalJSON takes a JSON string, number or boolean as its text, so a
// Value reads back what it was written as; null, lists and objects are
// refused.
func (v *Value) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return fmt.Errorf("empty ConfigMap value")
	}
	switch data[0] {
	case '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("ConfigMap value: %w", err)
		}
		*v = Value(s)
	case '[', '{':
		return fmt.Errorf("a list or object is not a ConfigMap value: want a string, number or boolean")
	case 'n':
		return fmt.Errorf("null is not a ConfigMap value: write \"\" for an empty one")
	default:
		var x any
		if err := json.Unmarshal(data, &x); err != nil {
			return fmt.Errorf("ConfigMap value: %w", err)
		}
		*v = Value(data)
	}
	return nil
}

// UnmarshalYAML takes any YAML scalar but null as its text, as written;
// lists and mappings are refused. (yaml.v3 does not call it for a null,
// which leaves the Value empty; Decode refuses a null.)
func (v *Value) UnmarshalYAML(n *yaml.Node) error {
	switch {
	case n.Kind == yaml.AliasNode && n.Alias != nil:
		return v.UnmarshalYAML(n.Alias)
	case n.Kind != yaml.ScalarNode:
		return fmt.Errorf("line %d: a list or mapping is not a ConfigMap value: want a string, number or boolean", n.Line)
	case n.ShortTag() == "!!null":
		return fmt.Errorf("line %d: null is not a ConfigMap value: write \"\" for an empty one", n.Line)
	}
	*v = Value(n.Value)
	return nil
}

// IsZero reports whether s sets nothing: no domain, no TLS, registry,
// high availability or gateway section, and no config or workload entry.
func (s Settings) IsZero() bool {
	return s.Domain == "" && s.TLS == nil && s.Registry == nil && s.HighAvailability == nil &&
		len(s.Config) == 0 && len(s.Workloads) == 0 && s.Gateway == nil
}
