package settings

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tmbox/tmbox/catalog"
)

// Limits of the settings.
const (
	// MaxHighAvailabilityReplicas is the most replicas
	// highAvailability.replicas may ask for.
	MaxHighAvailabilityReplicas = 100
	// exampleKey is the key of Knative's ConfigMaps that documents the
	// others; it stays as shipped.
	exampleKey = "_example"
)

// Gateway Service types.
const (
	GatewayLoadBalancer = "LoadBalancer"
	GatewayNodePort     = "NodePort"
	GatewayClusterIP    = "ClusterIP"
)

// Validate checks s on its own: it reads no file and needs no release
// (Load reads the files, Check compares with a release). It refuses
//
//   - a domain that is not a DNS-1123 subdomain;
//   - tls without both certFile and keyFile;
//   - a registry.skipTagResolving entry that is not a registry host
//     (HOST[:PORT], no scheme or path);
//   - highAvailability.replicas outside 1…100;
//   - a config ConfigMap name that is not NAME or NAMESPACE/NAME
//     (DNS-1123), a key that is not a valid ConfigMap key, the key
//     _example (it stays as shipped), and, for the keys Knative
//     documents, a value Knative would refuse or ignore (see
//     knativeRules: booleans, durations, numbers, quantities, enums);
//   - a workload not named NAMESPACE/NAME, negative replicas, container
//     names that are not DNS-1123 labels, resources other than requests
//     and limits, resource names and quantities that are not valid (or a
//     request above its limit), invalid env names, node selector and
//     label keys and values, annotation keys, and tolerations or
//     affinity that do not convert strictly into core/v1's types;
//   - a gateway type other than LoadBalancer, NodePort and ClusterIP, a
//     loadBalancerIP that is not an IP address or is set with another
//     type than LoadBalancer, invalid annotation keys.
//
// Validate is pure. The error is an errors.Join of *Error, in a stable
// order.
func (s Settings) Validate() error {
	var l errorList
	if s.Domain != "" {
		for _, msg := range validation.IsDNS1123Subdomain(s.Domain) {
			l.Add(Root+".domain", "%s is not a DNS domain: %s", catalog.QuoteShort(s.Domain), msg)
		}
	}
	if t := s.TLS; t != nil {
		switch {
		case t.CertFile == "" && t.KeyFile == "":
			l.Add(Root+".tls", "needs certFile and keyFile (PEM files of the gateway's certificate and its key)")
		case t.CertFile == "":
			l.Add(Root+".tls", "keyFile is set but certFile is not: both are needed")
		case t.KeyFile == "":
			l.Add(Root+".tls", "certFile is set but keyFile is not: both are needed")
		}
	}
	if r := s.Registry; r != nil {
		for i, h := range r.SkipTagResolving {
			if err := validRegistryHost(h); err != nil {
				l.Wrap(fmt.Sprintf("%s.registry.skipTagResolving[%d]", Root, i), err)
			}
		}
	}
	if ha := s.HighAvailability; ha != nil {
		if ha.Replicas < 1 || ha.Replicas > MaxHighAvailabilityReplicas {
			l.Add(Root+".highAvailability.replicas", "%d: want 1 to %d", ha.Replicas, MaxHighAvailabilityReplicas)
		}
	}
	for _, cm := range sortedKeys(s.Config) {
		validateConfig(&l, cm, s.Config[cm])
	}
	for _, w := range sortedKeys(s.Workloads) {
		validateWorkload(&l, w, s.Workloads[w])
	}
	if g := s.Gateway; g != nil {
		validateGateway(&l, g)
	}
	return l.Join()
}

// validRegistryHost checks h is HOST[:PORT], as Knative matches
// registries-skipping-tag-resolving entries against an image's registry.
func validRegistryHost(h string) error {
	if err := catalog.ValidRegistryHost(h); err != nil {
		return err
	}
	if strings.Contains(h, "/") {
		return fmt.Errorf("registry %s: want HOST[:PORT] without a path: Knative compares the registry host only", catalog.QuoteShort(h))
	}
	return nil
}

// validateConfig checks one config entry: ConfigMap name → keys.
func validateConfig(l *errorList, cm string, data map[string]Value) {
	path := Root + ".config." + cm
	ns, name, qualified := strings.Cut(cm, "/")
	if !qualified {
		ns, name = "", cm
	}
	valid := true
	if qualified {
		for _, msg := range validation.IsDNS1123Label(ns) {
			l.Add(path, "namespace %s: %s", catalog.QuoteShort(ns), msg)
			valid = false
		}
	}
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		l.Add(path, "ConfigMap name %s (want NAME or NAMESPACE/NAME): %s", catalog.QuoteShort(name), msg)
		valid = false
	}
	var keys map[string]valueRule
	var other valueRule
	if valid {
		keys, other = rulesFor(ns, name)
	}
	for _, k := range sortedKeys(data) {
		kp := path + "." + k
		if k == exampleKey {
			l.Add(kp, "%s documents the other keys and stays as shipped: set the keys it describes instead", exampleKey)
			continue
		}
		if msgs := validation.IsConfigMapKey(k); len(msgs) > 0 {
			l.Add(kp, "not a ConfigMap key: %s", strings.Join(msgs, "; "))
			continue
		}
		rule := keys[k]
		if rule == nil {
			rule = other
		}
		if rule == nil {
			continue
		}
		if err := rule(k, string(data[k])); err != nil {
			l.Wrap(kp, err)
		}
	}
}

// validateWorkload checks one workload override.
func validateWorkload(l *errorList, key string, w Workload) {
	path := Root + ".workloads." + key
	ns, name, ok := strings.Cut(key, "/")
	if !ok || ns == "" || name == "" {
		l.Add(path, "want NAMESPACE/NAME of a Deployment or StatefulSet, e.g. knative-serving/activator")
	} else {
		for _, msg := range validation.IsDNS1123Label(ns) {
			l.Add(path, "namespace %s: %s", catalog.QuoteShort(ns), msg)
		}
		for _, msg := range validation.IsDNS1123Subdomain(name) {
			l.Add(path, "name %s: %s", catalog.QuoteShort(name), msg)
		}
	}
	if w.Replicas != nil && *w.Replicas < 0 {
		l.Add(path+".replicas", "%d: want 0 or more", *w.Replicas)
	}
	for _, c := range sortedKeys(w.Containers) {
		validateContainer(l, path+".containers."+c, c, w.Containers[c])
	}
	for _, k := range sortedKeys(w.NodeSelector) {
		validateLabel(l, path+".nodeSelector."+k, k, w.NodeSelector[k])
	}
	for _, k := range sortedKeys(w.Labels) {
		validateLabel(l, path+".labels."+k, k, w.Labels[k])
	}
	for _, k := range sortedKeys(w.Annotations) {
		validateAnnotationKey(l, path+".annotations."+k, k)
	}
	if _, err := tolerations(w.Tolerations); err != nil {
		l.Wrap(path+".tolerations"+suffixOf(err), err)
	}
	if _, err := affinity(w.Affinity); err != nil {
		l.Wrap(path+".affinity", err)
	}
}

// validateContainer checks one container override.
func validateContainer(l *errorList, path, name string, c Container) {
	for _, msg := range validation.IsDNS1123Label(name) {
		l.Add(path, "container name %s: %s", catalog.QuoteShort(name), msg)
	}
	if _, err := resources(c.Resources); err != nil {
		l.Wrap(path+".resources"+suffixOf(err), err)
	}
	for _, k := range sortedKeys(c.Env) {
		for _, msg := range validation.IsEnvVarName(k) {
			l.Add(path+".env."+k, "not an environment variable name: %s", msg)
		}
	}
}

// validateLabel checks a label (or node selector) key and value.
func validateLabel(l *errorList, path, k, v string) {
	for _, msg := range content.IsLabelKey(k) {
		l.Add(path, "key %s: %s", catalog.QuoteShort(k), msg)
	}
	for _, msg := range content.IsLabelValue(v) {
		l.Add(path, "value %s: %s", catalog.QuoteShort(v), msg)
	}
}

// validateAnnotationKey checks an annotation key (Kubernetes compares it
// lower-cased).
func validateAnnotationKey(l *errorList, path, k string) {
	for _, msg := range content.IsLabelKey(strings.ToLower(k)) {
		l.Add(path, "annotation key %s: %s", catalog.QuoteShort(k), msg)
	}
}

// validateGateway checks the gateway settings.
func validateGateway(l *errorList, g *Gateway) {
	path := Root + ".gateway"
	switch g.Type {
	case "", GatewayLoadBalancer, GatewayNodePort, GatewayClusterIP:
	default:
		l.Add(path+".type", "%s: want %s, %s or %s", catalog.QuoteShort(g.Type), GatewayLoadBalancer, GatewayNodePort, GatewayClusterIP)
	}
	if g.LoadBalancerIP != "" {
		if a, err := netip.ParseAddr(g.LoadBalancerIP); err != nil || a.Zone() != "" {
			l.Add(path+".loadBalancerIP", "%s is not an IP address", catalog.QuoteShort(g.LoadBalancerIP))
		}
		if g.Type != "" && g.Type != GatewayLoadBalancer {
			l.Add(path+".loadBalancerIP", "set with type %s: a load balancer address needs type %s", g.Type, GatewayLoadBalancer)
		}
	}
	for _, k := range sortedKeys(g.Annotations) {
		validateAnnotationKey(l, path+".annotations."+k, k)
	}
}

// pathError is an error about a part of a setting: Suffix is appended to
// the setting's path ("[2]", ".requests.cpu").
type pathError struct {
	Suffix string
	Err    error
}

// Error is the cause's message (the suffix goes into the setting's path).
func (e *pathError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *pathError) Unwrap() error { return e.Err }

// suffixOf returns the path suffix of err, if it has one.
func suffixOf(err error) string {
	if p, ok := err.(*pathError); ok {
		return p.Suffix
	}
	return ""
}

// strictConvert converts a YAML/JSON fragment into out through JSON,
// refusing fields out does not have.
func strictConvert(in any, out any) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("not a %s: %w", typeName(out), err)
	}
	return nil
}

// typeName names the core/v1 type strictConvert converts into.
func typeName(v any) string {
	switch v.(type) {
	case *corev1.Toleration:
		return "core/v1 Toleration"
	case *corev1.Affinity:
		return "core/v1 Affinity"
	}
	return fmt.Sprintf("%T", v)
}

// tolerations converts the tolerations strictly and checks them as
// Kubernetes does: operator Exists or Equal, Exists with no value, a
// known effect, tolerationSeconds only with NoExecute, a valid key.
func tolerations(in []map[string]any) ([]corev1.Toleration, error) {
	out := make([]corev1.Toleration, 0, len(in))
	for i, m := range in {
		wrap := func(err error) error { return &pathError{Suffix: fmt.Sprintf("[%d]", i), Err: err} }
		var t corev1.Toleration
		if err := strictConvert(m, &t); err != nil {
			return nil, wrap(err)
		}
		if t.Key != "" {
			if msgs := content.IsLabelKey(t.Key); len(msgs) > 0 {
				return nil, wrap(fmt.Errorf("key %s: %s", catalog.QuoteShort(t.Key), strings.Join(msgs, "; ")))
			}
		}
		switch t.Operator {
		case "", corev1.TolerationOpEqual:
			if t.Key == "" {
				return nil, wrap(fmt.Errorf("operator %s needs a key (only Exists matches every key)", orDefault(string(t.Operator), "Equal")))
			}
			if msgs := content.IsLabelValue(t.Value); len(msgs) > 0 {
				return nil, wrap(fmt.Errorf("value %s: %s", catalog.QuoteShort(t.Value), strings.Join(msgs, "; ")))
			}
		case corev1.TolerationOpExists:
			if t.Value != "" {
				return nil, wrap(fmt.Errorf("operator Exists takes no value"))
			}
		default:
			return nil, wrap(fmt.Errorf("operator %s: want Exists or Equal", catalog.QuoteShort(string(t.Operator))))
		}
		switch t.Effect {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return nil, wrap(fmt.Errorf("effect %s: want NoSchedule, PreferNoSchedule or NoExecute", catalog.QuoteShort(string(t.Effect))))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			return nil, wrap(fmt.Errorf("tolerationSeconds needs effect NoExecute"))
		}
		out = append(out, t)
	}
	return out, nil
}

// affinity converts the affinity strictly; nil when unset.
func affinity(in map[string]any) (*corev1.Affinity, error) {
	if in == nil {
		return nil, nil
	}
	var a corev1.Affinity
	if err := strictConvert(in, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// resources converts a container's resources: only requests and limits,
// valid resource names, non-negative quantities, no request above its
// limit.
func resources(in map[string]map[string]string) (*corev1.ResourceRequirements, error) {
	if in == nil {
		return nil, nil
	}
	out := &corev1.ResourceRequirements{}
	for _, section := range sortedKeys(in) {
		var list corev1.ResourceList
		switch section {
		case "requests":
			out.Requests = corev1.ResourceList{}
			list = out.Requests
		case "limits":
			out.Limits = corev1.ResourceList{}
			list = out.Limits
		default:
			return nil, &pathError{Suffix: "." + section, Err: fmt.Errorf("unknown key %s (known: limits, requests)", catalog.QuoteShort(section))}
		}
		for _, name := range sortedKeys(in[section]) {
			p := "." + section + "." + name
			if msgs := content.IsLabelKey(name); len(msgs) > 0 {
				return nil, &pathError{Suffix: p, Err: fmt.Errorf("resource name %s: %s", catalog.QuoteShort(name), strings.Join(msgs, "; "))}
			}
			q, err := resource.ParseQuantity(in[section][name])
			if err != nil {
				return nil, &pathError{Suffix: p, Err: fmt.Errorf("%s is not a quantity such as 500m, 128Mi or 2: %w", catalog.QuoteShort(in[section][name]), err)}
			}
			if q.Sign() < 0 {
				return nil, &pathError{Suffix: p, Err: fmt.Errorf("%s is negative", catalog.QuoteShort(in[section][name]))}
			}
			list[corev1.ResourceName(name)] = q
		}
	}
	for name, req := range out.Requests {
		if lim, ok := out.Limits[name]; ok && req.Cmp(lim) > 0 {
			return nil, &pathError{Suffix: ".requests." + string(name), Err: fmt.Errorf("request %s is above the limit %s", req.String(), lim.String())}
		}
	}
	return out, nil
}

// toUnstructured converts a typed value into the JSON-shaped map
// unstructured objects hold.
func toUnstructured(v any) (map[string]any, error) {
	return runtime.DefaultUnstructuredConverter.ToUnstructured(v)
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
