package settings

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmbox/tmbox/installer/apply"
)

// Names of the objects Apply adds, and of what it mounts.
const (
	// TLSSecretName is the kubernetes.io/tls Secret in istio-system the
	// Knative ingress gateway's HTTPS server uses (credentialName).
	TLSSecretName = "tmbox-ingress-tls"
	// PullSecretName is the kubernetes.io/dockerconfigjson Secret in every
	// namespace of the release, referenced by every pod template.
	PullSecretName = "tmbox-registry-credentials"
	// CAConfigMapName is the ConfigMap in knative-serving holding the
	// registry CA (key CAKey), mounted into Knative Serving's controller.
	CAConfigMapName = "tmbox-registry-ca"
	// CAKey is CAConfigMapName's key.
	CAKey = "ca.crt"
	// CAMountPath is where the controller sees the CA ConfigMap.
	CAMountPath = "/tmbox-registry-ca"
	// CADirs is the controller's SSL_CERT_DIR: Go's crypto/x509 reads
	// every file of each colon-separated directory, so the controller
	// trusts the CA and the image's own roots.
	CADirs = CAMountPath + ":/etc/ssl/certs"
	// CAHashAnnotation, on the controller's pod template, is the sha256 of
	// the CA: a changed CA rolls the controller (Go reads its roots once).
	CAHashAnnotation = "tmbox.dev/registry-ca-sha256"
	// SkipTagResolvingKey is config-deployment's key of registries the
	// controller does not resolve tags in.
	SkipTagResolvingKey = "registries-skipping-tag-resolving"
)

// defaultSkipTagResolving is Knative Serving's built-in value of
// registries-skipping-tag-resolving (pkg/deployment/config.go; the
// shipped config-deployment documents it in _example and does not set
// it): setting the key replaces it, so tmbox keeps these in the union.
func defaultSkipTagResolving() []string { return []string{"kind.local", "ko.local", "dev.local"} }

// Apply transforms the release's objects in place according to r and
// returns the objects to add (Secrets, ConfigMaps), each with Component
// set to the component owning its namespace (that of the Namespace
// object, else of the first object in the namespace), sorted by
// namespace, kind and name. Applying twice is applying once; an object
// to add that objs already holds (a second Apply over objs and what the
// first added) is updated in place and not returned again.
//
// objs must be all the release's objects being installed (Apply runs
// Check on them first and refuses what it refuses); r comes from Load.
// In order:
//
//   - config: each ConfigMap's data keys are set (values as text);
//     _example and every other key stay as they are.
//   - domain: knative-serving/config-domain gets data[domain] = "" (the
//     default domain, in Knative's format).
//   - registry.skipTagResolving: config-deployment's
//     registries-skipping-tag-resolving becomes the sorted union of its
//     value (after config; Knative's built-in kind.local, ko.local,
//     dev.local when unset) and the entries, comma-joined.
//   - highAvailability.replicas: spec.replicas of each
//     HighAvailabilityDeployments the release has; a
//     HorizontalPodAutoscaler targeting one gets minReplicas =
//     max(minReplicas, replicas) and maxReplicas = max(maxReplicas,
//     replicas).
//   - workloads: replicas (winning over highAvailability, and moving an
//     HPA's bounds the same way when at least 1); per container,
//     resources replaced and env set (a variable of the same name
//     replaced, others appended in name order); the pod template's
//     nodeSelector, tolerations and affinity replaced, annotations and
//     labels merged.
//   - gateway: Service istio-system/istio-ingressgateway gets spec.type
//     and spec.loadBalancerIP when set and the annotations merged; type
//     ClusterIP drops the ports' nodePort.
//   - tls: Secret istio-system/tmbox-ingress-tls (kubernetes.io/tls) and,
//     on Gateway knative-serving/knative-ingress-gateway, a server on
//     port 443 (name https, protocol HTTPS, hosts *, tls mode SIMPLE,
//     credentialName tmbox-ingress-tls) replacing any server on 443;
//     redirectHTTP sets tls.httpsRedirect on the port-80 server.
//   - registry.caFile: ConfigMap knative-serving/tmbox-registry-ca (key
//     ca.crt) mounted read-only at /tmbox-registry-ca into the
//     controller's container "controller", with SSL_CERT_DIR=CADirs and
//     the CA's hash on the pod template.
//   - registry.pullSecret: Secret tmbox-registry-credentials
//     (kubernetes.io/dockerconfigjson) in every namespace an object is in
//     or a Namespace object names, except default and kube-*; every pod
//     template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job —
//     generateName ones too —, CronJob's job template, Pod) lists it in
//     imagePullSecrets, once.
func Apply(r *Resolved, objs []*apply.Object) ([]*apply.Object, error) {
	if r == nil {
		return nil, nil
	}
	s := r.Settings
	if err := missingContents(r); err != nil {
		return nil, err
	}
	if err := Check(s, "", objs); err != nil {
		return nil, err
	}
	idx := newIndex(objs)
	for _, cm := range sortedKeys(s.Config) {
		o, err := idx.configMap(cm, "the release")
		if err != nil {
			return nil, err
		}
		data := ensureMap(o.Object, "data")
		for k, v := range s.Config[cm] {
			data[k] = string(v)
		}
	}
	if s.Domain != "" {
		ensureMap(idx.get("", "ConfigMap", ServingNamespace, DomainConfigMap).Object, "data")[s.Domain] = ""
	}
	if reg := s.Registry; reg != nil && len(reg.SkipTagResolving) > 0 {
		skipTagResolving(idx.get("", "ConfigMap", ServingNamespace, DeploymentConfigMap), reg.SkipTagResolving)
	}
	replicas := map[*apply.Object]int64{}
	if ha := s.HighAvailability; ha != nil {
		for _, o := range haTargets(idx) {
			replicas[o] = int64(ha.Replicas)
		}
	}
	for _, key := range sortedKeys(s.Workloads) {
		w := s.Workloads[key]
		o := idx.workload(key)
		if err := applyWorkload(o, w); err != nil {
			return nil, fmt.Errorf("%s.workloads.%s: %s %s: %w", Root, key, o.GetKind(), key, err)
		}
		if w.Replicas != nil {
			replicas[o] = int64(*w.Replicas)
		}
	}
	for o, n := range replicas {
		ensureMap(o.Object, "spec")["replicas"] = n
	}
	scaleAutoscalers(idx.objs, replicas)
	if g := s.Gateway; g != nil {
		applyGateway(idx.get("", "Service", IstioNamespace, GatewayServiceName), g)
	}
	owners := namespaceOwners(objs)
	var add []*apply.Object
	if s.TLS != nil {
		gw := idx.get(istioNetworking, "Gateway", ServingNamespace, IngressGatewayName)
		if err := applyTLS(gw, s.TLS.RedirectHTTP); err != nil {
			return nil, fmt.Errorf("%s.tls: Gateway %s/%s: %w", Root, ServingNamespace, IngressGatewayName, err)
		}
		add = append(add, object(secret(IstioNamespace, TLSSecretName, "kubernetes.io/tls", map[string][]byte{"tls.crt": r.TLSCert, "tls.key": r.TLSKey}), owners, gw.Component))
	}
	if reg := s.Registry; reg != nil && reg.CAFile != "" {
		c := idx.get(appsGroup, "Deployment", ServingNamespace, ControllerName)
		if err := applyCA(c, r.CA); err != nil {
			return nil, fmt.Errorf("%s.registry.caFile: Deployment %s/%s: %w", Root, ServingNamespace, ControllerName, err)
		}
		add = append(add, object(configMap(ServingNamespace, CAConfigMapName, map[string]string{CAKey: string(r.CA)}), owners, c.Component))
	}
	if reg := s.Registry; reg != nil && reg.PullSecret != "" {
		for _, o := range objs {
			addPullSecret(o)
		}
		for _, ns := range pullSecretNamespaces(objs) {
			add = append(add, object(secret(ns, PullSecretName, "kubernetes.io/dockerconfigjson", map[string][]byte{".dockerconfigjson": r.PullSecret}), owners, ""))
		}
	}
	return merge(idx, add)
}

// missingContents refuses Resolved values whose files were not loaded.
func missingContents(r *Resolved) error {
	var l errorList
	s := r.Settings
	if s.TLS != nil && (len(r.TLSCert) == 0 || len(r.TLSKey) == 0) {
		l.Add(Root+".tls", "the certificate and key were not loaded (use Load)")
	}
	if s.Registry != nil && s.Registry.PullSecret != "" && len(r.PullSecret) == 0 {
		l.Add(Root+".registry.pullSecret", "%s was not loaded (use Load)", s.Registry.PullSecret)
	}
	if s.Registry != nil && s.Registry.CAFile != "" && len(r.CA) == 0 {
		l.Add(Root+".registry.caFile", "%s was not loaded (use Load)", s.Registry.CAFile)
	}
	return l.Join()
}

// merge updates in place the objects to add that idx already holds and
// returns the others, sorted.
func merge(idx *index, add []*apply.Object) ([]*apply.Object, error) {
	var out []*apply.Object
	for _, o := range add {
		if o.Component == "" {
			return nil, fmt.Errorf("no component owns namespace %s for %s", o.GetNamespace(), apply.KeyOf(o.Unstructured))
		}
		if have := idx.byKey[apply.KeyOf(o.Unstructured)]; have != nil {
			have.Object = o.Object
			continue
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		if a.GetKind() != b.GetKind() {
			return a.GetKind() < b.GetKind()
		}
		return a.GetName() < b.GetName()
	})
	return out, nil
}

// skipTagResolving sets config-deployment's registries to the union.
func skipTagResolving(cm *apply.Object, hosts []string) {
	data := ensureMap(cm.Object, "data")
	current := defaultSkipTagResolving()
	if v, ok := data[SkipTagResolvingKey].(string); ok {
		current = strings.Split(v, ",")
	}
	set := map[string]bool{}
	for _, h := range append(current, hosts...) {
		if h = strings.TrimSpace(h); h != "" {
			set[h] = true
		}
	}
	data[SkipTagResolvingKey] = strings.Join(sortedKeys(set), ",")
}

// scaleAutoscalers moves the bounds of each HorizontalPodAutoscaler that
// targets a Deployment in replicas (to at least 1 replica) to include it.
func scaleAutoscalers(objs []*apply.Object, replicas map[*apply.Object]int64) {
	want := map[string]int64{}
	for o, n := range replicas {
		if o.GetKind() == "Deployment" && n >= 1 {
			want[o.GetNamespace()+"/"+o.GetName()] = n
		}
	}
	for _, o := range objs {
		if o.GroupVersionKind().Group != "autoscaling" || o.GetKind() != "HorizontalPodAutoscaler" {
			continue
		}
		spec := nestedMap(o.Object, "spec")
		ref := nestedMap(o.Object, "spec", "scaleTargetRef")
		if spec == nil || ref == nil || ref["kind"] != "Deployment" {
			continue
		}
		name, _ := ref["name"].(string)
		n, ok := want[o.GetNamespace()+"/"+name]
		if !ok {
			continue
		}
		lo, ok := toInt64(spec["minReplicas"])
		if !ok {
			lo = 1 // the API's default
		}
		hi, _ := toInt64(spec["maxReplicas"])
		spec["minReplicas"] = max(lo, n)
		spec["maxReplicas"] = max(hi, n)
	}
}

// applyWorkload applies a workload's pod template overrides.
func applyWorkload(o *apply.Object, w Workload) error {
	tmpl := ensureMap(ensureMap(o.Object, "spec"), "template")
	pod := ensureMap(tmpl, "spec")
	if len(w.Containers) > 0 {
		containers := sliceOf(pod, "containers")
		for name, c := range w.Containers {
			m := findNamed(containers, name)
			if m == nil {
				return fmt.Errorf("no container %q", name)
			}
			if c.Resources != nil {
				res, err := resources(c.Resources)
				if err != nil {
					return err
				}
				u, err := toUnstructured(res)
				if err != nil {
					return err
				}
				m["resources"] = u
			}
			for _, k := range sortedKeys(c.Env) {
				setEnv(m, k, c.Env[k])
			}
		}
	}
	if w.NodeSelector != nil {
		pod["nodeSelector"] = anyMap(w.NodeSelector)
	}
	if w.Tolerations != nil {
		ts, err := tolerations(w.Tolerations)
		if err != nil {
			return err
		}
		list := make([]any, 0, len(ts))
		for i := range ts {
			u, err := toUnstructured(&ts[i])
			if err != nil {
				return err
			}
			list = append(list, u)
		}
		pod["tolerations"] = list
	}
	if w.Affinity != nil {
		a, err := affinity(w.Affinity)
		if err != nil {
			return err
		}
		u, err := toUnstructured(a)
		if err != nil {
			return err
		}
		pod["affinity"] = u
	}
	if len(w.Annotations) > 0 || len(w.Labels) > 0 {
		meta := ensureMap(tmpl, "metadata")
		for k, v := range w.Annotations {
			ensureMap(meta, "annotations")[k] = v
		}
		for k, v := range w.Labels {
			ensureMap(meta, "labels")[k] = v
		}
	}
	return nil
}

// applyGateway shapes the ingress gateway's Service.
func applyGateway(svc *apply.Object, g *Gateway) {
	spec := ensureMap(svc.Object, "spec")
	if g.Type != "" {
		spec["type"] = g.Type
		if g.Type == GatewayClusterIP {
			for _, p := range sliceOf(spec, "ports") {
				if m, ok := p.(map[string]any); ok {
					delete(m, "nodePort")
				}
			}
		}
	}
	if g.LoadBalancerIP != "" {
		spec["loadBalancerIP"] = g.LoadBalancerIP
	}
	if len(g.Annotations) > 0 {
		a := ensureMap(ensureMap(svc.Object, "metadata"), "annotations")
		for k, v := range g.Annotations {
			a[k] = v
		}
	}
}

// applyTLS adds the HTTPS server to the Knative ingress gateway.
func applyTLS(gw *apply.Object, redirect bool) error {
	spec := ensureMap(gw.Object, "spec")
	servers := sliceOf(spec, "servers")
	https := map[string]any{
		"port":  map[string]any{"number": int64(443), "name": "https", "protocol": "HTTPS"},
		"hosts": []any{"*"},
		"tls":   map[string]any{"mode": "SIMPLE", "credentialName": TLSSecretName},
	}
	replaced := false
	for i, srv := range servers {
		if n, ok := toInt64(nestedMap(asMap(srv), "port")["number"]); ok && n == 443 {
			servers[i] = https
			replaced = true
		}
	}
	if !replaced {
		servers = append(servers, https)
	}
	if redirect {
		i := httpServer(gw)
		if i < 0 {
			return fmt.Errorf("no HTTP server on port 80 to redirect")
		}
		ensureMap(asMap(servers[i]), "tls")["httpsRedirect"] = true
	}
	spec["servers"] = servers
	return nil
}

// httpServer returns the index of a Gateway's server on port 80, or -1.
func httpServer(gw *apply.Object) int {
	for i, srv := range sliceOf(nestedMap(gw.Object, "spec"), "servers") {
		if n, ok := toInt64(nestedMap(asMap(srv), "port")["number"]); ok && n == 80 {
			return i
		}
	}
	return -1
}

// applyCA mounts the CA ConfigMap into the controller.
func applyCA(c *apply.Object, ca []byte) error {
	tmpl := ensureMap(ensureMap(c.Object, "spec"), "template")
	pod := ensureMap(tmpl, "spec")
	m := findNamed(sliceOf(pod, "containers"), ControllerName)
	if m == nil {
		return fmt.Errorf("no container %q", ControllerName)
	}
	pod["volumes"] = setNamed(sliceOf(pod, "volumes"), map[string]any{
		"name":      CAConfigMapName,
		"configMap": map[string]any{"name": CAConfigMapName},
	})
	m["volumeMounts"] = setNamed(sliceOf(m, "volumeMounts"), map[string]any{
		"name": CAConfigMapName, "mountPath": CAMountPath, "readOnly": true,
	})
	setEnv(m, "SSL_CERT_DIR", CADirs)
	sum := sha256.Sum256(ca)
	ensureMap(ensureMap(tmpl, "metadata"), "annotations")[CAHashAnnotation] = hex.EncodeToString(sum[:])
	return nil
}

// addPullSecret makes o's pod template, if it has one, reference the pull
// secret.
func addPullSecret(o *apply.Object) {
	pod := podSpec(o)
	if pod == nil {
		return
	}
	for _, ref := range sliceOf(pod, "imagePullSecrets") {
		if asMap(ref)["name"] == PullSecretName {
			return
		}
	}
	pod["imagePullSecrets"] = append(sliceOf(pod, "imagePullSecrets"), map[string]any{"name": PullSecretName})
}

// podSpec returns the pod spec of a workload, Job, CronJob or Pod, nil
// for other objects (and for a workload without a pod template).
func podSpec(o *apply.Object) map[string]any {
	gvk := o.GroupVersionKind()
	switch {
	case gvk.Group == appsGroup && (gvk.Kind == "Deployment" || gvk.Kind == "StatefulSet" || gvk.Kind == "DaemonSet" || gvk.Kind == "ReplicaSet"),
		gvk.Group == "batch" && gvk.Kind == "Job",
		gvk.Group == "" && gvk.Kind == "ReplicationController":
		return nestedMap(o.Object, "spec", "template", "spec")
	case gvk.Group == "batch" && gvk.Kind == "CronJob":
		return nestedMap(o.Object, "spec", "jobTemplate", "spec", "template", "spec")
	case gvk.Group == "" && gvk.Kind == "Pod":
		return nestedMap(o.Object, "spec")
	}
	return nil
}

// pullSecretNamespaces lists, sorted, the namespaces the pull secret goes
// into: every namespace an object is in or a Namespace object names,
// except default and kube-*.
func pullSecretNamespaces(objs []*apply.Object) []string {
	set := map[string]bool{}
	for _, o := range objs {
		ns := o.GetNamespace()
		if o.GroupVersionKind().Group == "" && o.GetKind() == "Namespace" {
			ns = o.GetName()
		}
		if ns == "" || ns == "default" || strings.HasPrefix(ns, "kube-") {
			continue
		}
		set[ns] = true
	}
	return sortedKeys(set)
}

// namespaceOwners maps each namespace to the component owning it: that of
// its Namespace object, else of the first object in it.
func namespaceOwners(objs []*apply.Object) map[string]string {
	out := map[string]string{}
	for _, o := range objs {
		if o.GroupVersionKind().Group == "" && o.GetKind() == "Namespace" {
			if _, ok := out[o.GetName()]; !ok {
				out[o.GetName()] = o.Component
			}
		}
	}
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" {
			if _, ok := out[ns]; !ok {
				out[ns] = o.Component
			}
		}
	}
	return out
}

// object wraps an object to add, owned by its namespace's component (or
// fallback when no object of the release is in that namespace).
func object(u *unstructured.Unstructured, owners map[string]string, fallback string) *apply.Object {
	c, ok := owners[u.GetNamespace()]
	if !ok || c == "" {
		c = fallback
	}
	return &apply.Object{Unstructured: u, Component: c}
}

// secret builds a Secret.
func secret(ns, name, typ string, data map[string][]byte) *unstructured.Unstructured {
	d := map[string]any{}
	for k, v := range data {
		d[k] = base64.StdEncoding.EncodeToString(v)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"type":       typ,
		"data":       d,
	}}
}

// configMap builds a ConfigMap.
func configMap(ns, name string, data map[string]string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"data":       anyMap(data),
	}}
}

// setEnv sets a container's env variable: the entry of that name is
// replaced, else one is appended.
func setEnv(container map[string]any, name, value string) {
	container["env"] = setNamed(sliceOf(container, "env"), map[string]any{"name": name, "value": value})
}

// setNamed replaces the element of list with item's name, or appends item.
func setNamed(list []any, item map[string]any) []any {
	for i, x := range list {
		if asMap(x)["name"] == item["name"] {
			list[i] = item
			return list
		}
	}
	return append(list, item)
}

// findNamed returns the element of list named name, or nil.
func findNamed(list []any, name string) map[string]any {
	for _, x := range list {
		if m := asMap(x); m != nil && m["name"] == name {
			return m
		}
	}
	return nil
}

// ensureMap returns m[key] as a map, making it (and replacing a non-map)
// when needed.
func ensureMap(m map[string]any, key string) map[string]any {
	if c, ok := m[key].(map[string]any); ok {
		return c
	}
	c := map[string]any{}
	m[key] = c
	return c
}

// nestedMap returns the map at path under m, or nil.
func nestedMap(m map[string]any, path ...string) map[string]any {
	for _, k := range path {
		if m == nil {
			return nil
		}
		m, _ = m[k].(map[string]any)
	}
	return m
}

// sliceOf returns m[key] as a list, nil when absent or not a list.
func sliceOf(m map[string]any, key string) []any {
	if m == nil {
		return nil
	}
	s, _ := m[key].([]any)
	return s
}

// asMap returns x as a map, nil when it is not one.
func asMap(x any) map[string]any {
	m, _ := x.(map[string]any)
	return m
}

// stringMap returns the string values of m.
func stringMap(m map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// anyMap converts a string map into the shape unstructured objects hold.
func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// toInt64 reads a number of a decoded object (JSON decoding gives
// float64, rendered charts int64).
func toInt64(x any) (int64, bool) {
	switch v := x.(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case int32:
		return int64(v), true
	case float64:
		return int64(v), v == float64(int64(v))
	case json.Number:
		i, err := v.Int64()
		return i, err == nil
	}
	return 0, false
}
