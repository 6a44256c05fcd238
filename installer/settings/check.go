package settings

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
)

// Objects the settings change, by namespace and name.
const (
	// IngressGatewayName is the networking.istio.io Gateway (in
	// knative-serving) that TLS adds an HTTPS server to.
	IngressGatewayName = "knative-ingress-gateway"
	// GatewayServiceName is the Service (in istio-system) the gateway
	// settings shape.
	GatewayServiceName = "istio-ingressgateway"
	// ControllerName is Knative Serving's controller Deployment and its
	// container: it trusts the registry CA when it resolves tags.
	ControllerName = "controller"
	// DomainConfigMap and DeploymentConfigMap are Knative Serving's
	// ConfigMaps that domain and skipTagResolving set.
	DomainConfigMap     = "config-domain"
	DeploymentConfigMap = "config-deployment"
)

// Check refuses settings the release cannot honour, given the release's
// objects (those of every component being installed, as Apply will get
// them):
//
//   - a config ConfigMap that is not a Knative ConfigMap of the release
//     (in knative-serving or knative-eventing; the message lists the
//     release's), or a bare name the release has in both namespaces (the
//     message lists the qualified names to write instead);
//   - a workload that is not a Deployment or StatefulSet of the release
//     (the message lists them as namespace/name), a container the
//     workload does not have (the message lists its containers), a label
//     that would change a label the workload's selector matches on;
//   - TLS without the Knative ingress Gateway (or, with redirectHTTP,
//     without its HTTP server on port 80), a CA file without Knative
//     Serving's controller, a domain without config-domain,
//     skipTagResolving without config-deployment, gateway settings
//     without the istio-ingressgateway Service, highAvailability when
//     the release has none of the Deployments it scales.
//
// release is the release's name, for messages. The error is an
// errors.Join of *Error.
func Check(s Settings, release string, objs []*apply.Object) error {
	if release == "" {
		release = "the release"
	} else {
		release = "release " + release
	}
	idx := newIndex(objs)
	var l errorList
	if s.Domain != "" && idx.get("", "ConfigMap", ServingNamespace, DomainConfigMap) == nil {
		l.Add(Root+".domain", "%s has no ConfigMap %s/%s to set the domain in", release, ServingNamespace, DomainConfigMap)
	}
	if t := s.TLS; t != nil {
		gw := idx.get(istioNetworking, "Gateway", ServingNamespace, IngressGatewayName)
		switch {
		case gw == nil:
			l.Add(Root+".tls", "%s has no Knative ingress Gateway %s/%s to add an HTTPS server to", release, ServingNamespace, IngressGatewayName)
		case t.RedirectHTTP && httpServer(gw) < 0:
			l.Add(Root+".tls.redirectHTTP", "Gateway %s/%s of %s has no HTTP server on port 80 to redirect", ServingNamespace, IngressGatewayName, release)
		}
	}
	if r := s.Registry; r != nil {
		if r.CAFile != "" {
			c := idx.get(appsGroup, "Deployment", ServingNamespace, ControllerName)
			switch {
			case c == nil:
				l.Add(Root+".registry.caFile", "%s has no Knative Serving controller (Deployment %s/%s) to trust the CA", release, ServingNamespace, ControllerName)
			case !slices.Contains(containerNames(c), ControllerName):
				l.Add(Root+".registry.caFile", "Deployment %s/%s of %s has no container %q to trust the CA", ServingNamespace, ControllerName, release, ControllerName)
			}
		}
		if len(r.SkipTagResolving) > 0 && idx.get("", "ConfigMap", ServingNamespace, DeploymentConfigMap) == nil {
			l.Add(Root+".registry.skipTagResolving", "%s has no ConfigMap %s/%s", release, ServingNamespace, DeploymentConfigMap)
		}
	}
	if s.HighAvailability != nil && len(haTargets(idx)) == 0 {
		l.Add(Root+".highAvailability", "%s has none of the Deployments high availability scales (%s)", release, strings.Join(HighAvailabilityDeployments(), ", "))
	}
	for _, cm := range sortedKeys(s.Config) {
		if _, err := idx.configMap(cm, release); err != nil {
			l.Wrap(Root+".config."+cm, err)
		}
	}
	for _, key := range sortedKeys(s.Workloads) {
		checkWorkload(&l, idx, key, s.Workloads[key], release)
	}
	if s.Gateway != nil && idx.get("", "Service", IstioNamespace, GatewayServiceName) == nil {
		l.Add(Root+".gateway", "%s has no Service %s/%s", release, IstioNamespace, GatewayServiceName)
	}
	return l.Join()
}

// checkWorkload checks one workload override against the release.
func checkWorkload(l *errorList, idx *index, key string, w Workload, release string) {
	path := Root + ".workloads." + key
	o := idx.workload(key)
	if o == nil {
		l.Add(path, "%s has no Deployment or StatefulSet %s; its workloads: %s", release, catalog.QuoteShort(key), strings.Join(idx.workloadNames(), ", "))
		return
	}
	names := containerNames(o)
	for _, c := range sortedKeys(w.Containers) {
		if !slices.Contains(names, c) {
			l.Add(path+".containers."+c, "%s %s has no container %s; its containers: %s", o.GetKind(), key, catalog.QuoteShort(c), strings.Join(names, ", "))
		}
	}
	selector := stringMap(nestedMap(o.Object, "spec", "selector", "matchLabels"))
	for _, k := range sortedKeys(w.Labels) {
		if v, ok := selector[k]; ok && v != w.Labels[k] {
			l.Add(path+".labels."+k, "%s %s selects its pods by %s=%s: the label cannot be changed", o.GetKind(), key, k, v)
		}
	}
}

// HighAvailabilityDeployments are the Deployments highAvailability
// scales, as namespace/name, where a release has them: the control
// planes Knative's high-availability guide names — Serving's activator,
// autoscaler, autoscaler-hpa, controller, webhook and net-istio's
// controller and webhook; Eventing's eventing-controller,
// eventing-webhook, imc-controller, imc-dispatcher, mt-broker-controller,
// mt-broker-filter, mt-broker-ingress — and Istio's istiod and
// istio-ingressgateway. Releases 1.21–1.23 have all of them.
func HighAvailabilityDeployments() []string {
	var out []string
	for _, n := range []string{"activator", "autoscaler", "autoscaler-hpa", "controller", "webhook", "net-istio-controller", "net-istio-webhook"} {
		out = append(out, ServingNamespace+"/"+n)
	}
	for _, n := range []string{"eventing-controller", "eventing-webhook", "imc-controller", "imc-dispatcher", "mt-broker-controller", "mt-broker-filter", "mt-broker-ingress"} {
		out = append(out, EventingNamespace+"/"+n)
	}
	return append(out, IstioNamespace+"/istiod", IstioNamespace+"/"+GatewayServiceName)
}

// haTargets returns the HighAvailabilityDeployments the release has.
func haTargets(idx *index) []*apply.Object {
	var out []*apply.Object
	for _, key := range HighAvailabilityDeployments() {
		ns, name, _ := strings.Cut(key, "/")
		if o := idx.get(appsGroup, "Deployment", ns, name); o != nil {
			out = append(out, o)
		}
	}
	return out
}

// Groups of the kinds the settings touch.
const (
	appsGroup       = "apps"
	istioNetworking = "networking.istio.io"
)

// index finds a release's objects by key; the first object of a key wins
// (as objectsFor keeps the first component's copy). generateName objects
// are not indexed.
type index struct {
	objs  []*apply.Object
	byKey map[apply.ObjectKey]*apply.Object
}

// newIndex indexes objs.
func newIndex(objs []*apply.Object) *index {
	idx := &index{objs: objs, byKey: make(map[apply.ObjectKey]*apply.Object, len(objs))}
	for _, o := range objs {
		if o == nil || o.Unstructured == nil || o.Create {
			continue
		}
		k := apply.KeyOf(o.Unstructured)
		if _, dup := idx.byKey[k]; !dup {
			idx.byKey[k] = o
		}
	}
	return idx
}

// get returns the object of group, kind, namespace and name, or nil.
func (idx *index) get(group, kind, ns, name string) *apply.Object {
	return idx.byKey[apply.ObjectKey{Group: group, Kind: kind, Namespace: ns, Name: name}]
}

// workload returns the Deployment or StatefulSet "namespace/name", or nil.
func (idx *index) workload(key string) *apply.Object {
	ns, name, ok := strings.Cut(key, "/")
	if !ok {
		return nil
	}
	if o := idx.get(appsGroup, "Deployment", ns, name); o != nil {
		return o
	}
	return idx.get(appsGroup, "StatefulSet", ns, name)
}

// workloadNames lists the release's Deployments and StatefulSets as
// namespace/name, sorted.
func (idx *index) workloadNames() []string {
	var out []string
	for k := range idx.byKey {
		if k.Group == appsGroup && (k.Kind == "Deployment" || k.Kind == "StatefulSet") {
			out = append(out, k.Namespace+"/"+k.Name)
		}
	}
	sort.Strings(out)
	return out
}

// knativeConfigMaps returns the release's Knative ConfigMaps (those in
// knative-serving and knative-eventing, but tmbox's own), by name.
func (idx *index) knativeConfigMaps() map[string][]*apply.Object {
	out := map[string][]*apply.Object{}
	for k, o := range idx.byKey {
		if k.Group != "" || k.Kind != "ConfigMap" || (k.Namespace != ServingNamespace && k.Namespace != EventingNamespace) || strings.HasPrefix(k.Name, "tmbox-") {
			continue
		}
		out[k.Name] = append(out[k.Name], o)
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return list[i].GetNamespace() < list[j].GetNamespace() })
	}
	return out
}

// configMap resolves a config entry's ConfigMap ("name" or
// "namespace/name") among the release's Knative ConfigMaps.
func (idx *index) configMap(cm, release string) (*apply.Object, error) {
	all := idx.knativeConfigMaps()
	ns, name, qualified := strings.Cut(cm, "/")
	if !qualified {
		name = cm
	}
	var match []*apply.Object
	for _, o := range all[name] {
		if !qualified || o.GetNamespace() == ns {
			match = append(match, o)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return nil, fmt.Errorf("%s has no Knative ConfigMap %s; its Knative ConfigMaps: %s", release, catalog.QuoteShort(cm), strings.Join(configMapNames(all), ", "))
	}
	var names []string
	for _, o := range match {
		names = append(names, o.GetNamespace()+"/"+o.GetName())
	}
	return nil, fmt.Errorf("%s has a ConfigMap %s in more than one namespace: write %s", release, catalog.QuoteShort(cm), strings.Join(names, " or "))
}

// configMapNames lists ConfigMaps as a user writes them: the bare name
// when it is in one namespace, namespace/name for each otherwise; sorted.
func configMapNames(all map[string][]*apply.Object) []string {
	var out []string
	for name, list := range all {
		if len(list) == 1 {
			out = append(out, name)
			continue
		}
		for _, o := range list {
			out = append(out, o.GetNamespace()+"/"+name)
		}
	}
	sort.Strings(out)
	return out
}

// containerNames lists the containers of a workload's pod template.
func containerNames(o *apply.Object) []string {
	var out []string
	for _, c := range sliceOf(nestedMap(o.Object, "spec", "template", "spec"), "containers") {
		if m, ok := c.(map[string]any); ok {
			if n, ok := m["name"].(string); ok {
				out = append(out, n)
			}
		}
	}
	return out
}
